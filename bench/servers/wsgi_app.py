"""Bare WSGI apps for granian (``granian --interface wsgi --blocking-threads 1 servers.wsgi_app:app``).

``app`` calls the model directly; ``run_app`` calls the entry script's own ``run()`` (its json.loads
included): the floor for any server that hosts the script unchanged.
"""

from collections.abc import Callable, Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from .common import JSON_HEADERS, TEXT_HEADERS, score, score_with_run

WSGIApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]


def _make_app(scorer: Callable[[bytes], bytes]) -> WSGIApp:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/score":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body, headers = scorer(environ["wsgi.input"].read(length)), JSON_HEADERS
        else:
            body, headers = b"Healthy", TEXT_HEADERS
        start_response("200 OK", [*headers, ("content-length", str(len(body)))])
        return [body]

    return app


app = _make_app(score)
run_app = _make_app(score_with_run)
