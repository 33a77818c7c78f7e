"""The WSGI application of one worker: liveness, readiness and `/score` in front of the host."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

import orjson

from scorehost import __version__
from scorehost.errors import PayloadTooLarge, RunFailed, ScorehostError, ScoringTimeout, ServiceUnavailable
from scorehost.host.entry import EntryScript
from scorehost.host.loader import format_user_traceback
from scorehost.http.encode import JSON, encode_result
from scorehost.http.gate import RunGate
from scorehost.http.inputs import ScoreRequest, build_run_input, title_case_headers
from scorehost.http.request_ids import request_ids_of
from scorehost.logs import AccessLog

__all__ = ["ScoringApp"]

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

logger = logging.getLogger("scorehost.worker")

_SERVER = ("x-ms-server-version", f"scorehost/{__version__}")
_ALLOW = {"/": "GET, HEAD, OPTIONS", "/ready": "GET, HEAD, OPTIONS", "/score": "GET, POST, OPTIONS"}
_TEXT = "text/plain; charset=utf-8"
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class ScoringApp:
    """One worker's HTTP surface. `script` is None until the host has loaded and initialised it."""

    def __init__(
        self, gate: RunGate, *, timeout: float, max_body_size: int, access_log: AccessLog | None = None
    ) -> None:
        self.gate = gate
        self.timeout = timeout
        self.max_body_size = max_body_size
        self.access_log = access_log or AccessLog(enabled=False)
        self.script: EntryScript | None = None

    @property
    def ready(self) -> bool:
        return self.script is not None and self.script.initialized

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI interface (tests, other WSGI servers); the granian front calls `respond()` directly."""
        status, headers, body = self.respond(environ)
        start_response(_STATUS_LINES.get(status, str(status)), headers)
        return [body]

    def respond(self, environ: dict[str, Any]) -> tuple[int, Headers, bytes]:
        """Answer one request: status, headers and the whole body."""
        started = time.monotonic()
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        request_id = ""
        if path == "/score" and method in ("GET", "POST"):
            status, headers, body, request_id = self._score(environ, started)
        else:
            status, headers, body = self._route(path, method)
        if method == "HEAD":
            body = b""  # the headers still give the length a GET would have
        self.access_log.write(method, path, status, (time.monotonic() - started) * 1000, len(body), request_id)
        return status, headers, body

    def _route(self, path: str, method: str) -> tuple[int, Headers, bytes]:
        allow = _ALLOW.get(path)
        if allow is None:
            known = "GET / (liveness), GET /ready (readiness), GET|POST /score"
            return _json(404, {"message": f"No route {path}. Routes: {known}."})
        if method == "OPTIONS":
            return _reply(200, b"", _TEXT, [("allow", allow)])
        if method not in allow.split(", ") or path == "/score":
            return _json(405, {"message": f"{method} is not allowed on {path}; use {allow}."}, [("allow", allow)])
        if path == "/":
            return _reply(200, b"Healthy", _TEXT)
        if self.ready:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "loading", "message": "init() has not finished yet."})

    def _score(self, environ: dict[str, Any], started: float) -> tuple[int, Headers, bytes, str]:
        try:
            request_id, id_headers = request_ids_of(environ)
        except ScorehostError as error:
            return (*_json(error.status_code, {"message": error.message}), "")
        extra = [_SERVER, *id_headers]
        try:
            request = ScoreRequest(
                method=environ["REQUEST_METHOD"],
                body=_read_body(environ, self.max_body_size),
                query=environ.get("QUERY_STRING", ""),
                content_type=environ.get("CONTENT_TYPE", ""),
                environ=environ,
            )
            payload, content_type, run_ms = self.gate.run(
                self._run, request, deadline=started + self.timeout, started=started, request_id=request_id
            )
        except ScorehostError as error:
            self._log_failure(error, request_id)
            failed = isinstance(error, RunFailed | ScoringTimeout)
            extra.append(("x-ms-run-function-failed", str(failed)))
            if isinstance(error, PayloadTooLarge):
                extra.append(("connection", "close"))
            if isinstance(error, ServiceUnavailable):
                extra.append(("retry-after", "1"))
            return (*_json(error.status_code, {"message": error.message}, extra), request_id)
        extra += [("x-ms-run-function-failed", "False"), ("x-ms-run-fn-exec-ms", f"{run_ms:.3f}")]
        return (*_reply(200, payload, content_type, extra), request_id)

    def _run(self, request: ScoreRequest) -> tuple[bytes, str, float]:
        """The part of a request that touches user code: parse the input, call run(), encode the result."""
        script = self.script
        if script is None:  # requests wait behind loading, so only one that outlived a failed load gets here
            raise ServiceUnavailable("The entry script is not loaded: init() has not finished, or it failed.")
        data = build_run_input(script.run_input.rule, request)
        begun = time.perf_counter()
        result = script.call(data, title_case_headers(request.environ) if script.wants_headers else None)
        run_ms = (time.perf_counter() - begun) * 1000
        payload, content_type = encode_result(result)
        return payload, content_type, run_ms

    @staticmethod
    def _log_failure(error: ScorehostError, request_id: str) -> None:
        extra = {"request_id": request_id}
        if isinstance(error, RunFailed) and error.__cause__ is not None:
            logger.error("%s\n%s", error.message, format_user_traceback(error.__cause__), extra=extra)
        elif error.status_code >= 500:
            logger.error("%s", error.message, extra=extra)
        else:
            logger.info("rejected: %s", error.message, extra=extra)


def _read_body(environ: Mapping[str, Any], limit: int) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length and length.isdigit():
        size = int(length)
        if size > limit:
            raise _too_large(limit)  # refused before reading: a client that sent Expect: 100-continue sends nothing
        return bytes(stream.read(size)) if size else b""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(65536):  # a chunked body, counted as it arrives
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is larger than the {limit}-byte limit; send less, or raise --max-body-size.")


def _json(status: int, content: object, headers: Headers | None = None) -> tuple[int, Headers, bytes]:
    return _reply(status, orjson.dumps(content), JSON, headers)


def _reply(status: int, body: bytes, content_type: str, headers: Headers | None = None) -> tuple[int, Headers, bytes]:
    return status, [("content-type", content_type), ("content-length", str(len(body))), *(headers or ())], body
