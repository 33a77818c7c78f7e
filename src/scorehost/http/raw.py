"""Werkzeug objects in and out of run(): the request a `@rawhttp` run() receives, and any Response it returns."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from scorehost.http.pipeline import Body

__all__ = ["RAW_METHODS", "Body", "raw_request", "response_parts"]

# Every method a @rawhttp run() is called for (the reference routes GET, POST, OPTIONS and HEAD only).
RAW_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD")

# What a full WSGI server adds to each environ; granian's worker hands over only the request's own keys.
_SERVER_KEYS: dict[str, Any] = {
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
    "SCRIPT_NAME": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
}


def raw_request(request_class: type[Request], environ: Mapping[str, Any], body: bytes) -> Request:
    """A Werkzeug request over the body already read (and size-checked), so forms and files parse from memory."""
    full = {**_SERVER_KEYS, **environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    return request_class(full)


def response_parts(response: Response) -> tuple[int, list[tuple[str, str]], Body]:
    """Status, headers and body of a Response run() returned (AMLResponse or any Werkzeug/Flask one).

    A streamed response (its body an iterator) is passed on as an iterator, so it streams to the client.
    """
    headers = response.headers.to_wsgi_list()
    if response.is_streamed:
        return response.status_code, headers, _closing(response)
    return response.status_code, headers, response.get_data()


def _closing(response: Response) -> Iterator[bytes]:
    try:
        yield from response.iter_encoded()
    finally:
        response.close()
