"""A throwaway WSGI server for the /docs browser test until ScoringApp serves /docs and /swagger.json:
DocsPage, a fixed OpenAPI 3.0 document and a /score that answers a prediction, on a real socket."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scorehost.http.docs_page import DocsPage

EXAMPLE = {"data": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "harness", "description": "A fixed document for the /docs browser test", "version": "1.0"},
    "paths": {
        "/score": {
            "post": {
                "operationId": "RunMLService",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceInput"}}},
                },
                "responses": {
                    "200": {
                        "description": "Success",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}},
                    }
                },
            }
        }
    },
    "components": {
        "schemas": {
            "ServiceInput": {
                "type": "object",
                "properties": {
                    "data": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                },
                "example": EXAMPLE,
            },
            "ServiceOutput": {"type": "array", "items": {"type": "number"}},
        }
    },
}


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _app(docs: DocsPage) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        answer = docs.answer(path, method)
        if answer is None and path == "/swagger.json":
            answer = _json(200, SPEC)
        elif answer is None and path == "/score" and method == "POST":
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            answer = _json(200, [sum(row) for row in body["data"]])  # the "prediction": a sum per row
        elif answer is None:
            answer = _json(404, {"message": f"No route {path}"})
        status, headers, payload = answer
        start_response(f"{status} X", headers)
        return [payload]

    return app


def _json(status: int, value: object) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps(value).encode()
    return status, [("content-type", "application/json"), ("content-length", str(len(body)))], body


@contextlib.contextmanager
def harness() -> Iterator[str]:
    """Serve on a free local port for a `with` block; yields the base URL."""
    server = make_server("127.0.0.1", 0, _app(DocsPage()), server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
