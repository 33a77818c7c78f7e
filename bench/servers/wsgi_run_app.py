"""Bare WSGI app that calls the entry script's ``run()``: the floor for any server hosting the script.

``granian --interface wsgi --blocking-threads 1 servers.wsgi_run_app:app``
"""

from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from .common import JSON_HEADERS, TEXT_HEADERS, score_with_run


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/score":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body, headers = score_with_run(environ["wsgi.input"].read(length)), JSON_HEADERS
    else:
        body, headers = b"Healthy", TEXT_HEADERS
    start_response("200 OK", [*headers, ("content-length", str(len(body)))])
    return [body]
