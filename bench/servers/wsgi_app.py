"""Bare WSGI app for granian: ``granian --interface wsgi --blocking-threads 1 servers.wsgi_app:app``."""

from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from .common import JSON_HEADERS, TEXT_HEADERS, score


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/score":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body, headers = score(environ["wsgi.input"].read(length)), JSON_HEADERS
    else:
        body, headers = b"Healthy", TEXT_HEADERS
    start_response("200 OK", [*headers, ("content-length", str(len(body)))])
    return [body]
