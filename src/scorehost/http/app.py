"""The ASGI application of one worker: liveness, readiness and `/score` in front of the host."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from scorehost import __version__
from scorehost.errors import PayloadTooLarge, RunFailed, ScorehostError, ScoringTimeout, ServiceUnavailable
from scorehost.host.entry import EntryScript
from scorehost.host.loader import format_user_traceback
from scorehost.http.encode import JSON, encode_result
from scorehost.http.inputs import ScoreRequest, build_run_input, title_case_headers
from scorehost.http.request_ids import request_ids
from scorehost.http.runner import RunExecutor
from scorehost.logs import AccessLog

__all__ = ["ScoringApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("scorehost.worker")

_SERVER = ("x-ms-server-version", f"scorehost/{__version__}")
_ALLOW = {"/": "GET, HEAD, OPTIONS", "/ready": "GET, HEAD, OPTIONS", "/score": "GET, POST, OPTIONS"}
_TEXT = "text/plain; charset=utf-8"


class ScoringApp:
    """One worker's HTTP surface. `script` is None until the host has loaded and initialised it."""

    def __init__(
        self,
        executor: RunExecutor,
        *,
        timeout: float,
        max_body_size: int,
        access_log: AccessLog | None = None,
    ) -> None:
        self.executor = executor
        self.access_log = access_log or AccessLog(enabled=False)
        self.timeout = timeout
        self.max_body_size = max_body_size
        self.script: EntryScript | None = None

    @property
    def ready(self) -> bool:
        return self.script is not None and self.script.initialized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do
        started = time.monotonic()
        path, method = scope["path"], scope["method"]
        status, length, request_id = 500, 0, ""
        try:
            if path == "/score" and method in ("GET", "POST"):
                status, length, request_id = await self._score(scope, receive, send, started)
            else:
                status, length = await self._route(path, method, send)
        finally:
            self.access_log.write(method, path, status, (time.monotonic() - started) * 1000, length, request_id)

    async def _route(self, path: str, method: str, send: Send) -> tuple[int, int]:
        allow = _ALLOW.get(path)
        if allow is None:
            known = "GET / (liveness), GET /ready (readiness), GET|POST /score"
            return await _json(send, 404, {"message": f"No route {path}. Routes: {known}."})
        if method == "OPTIONS":
            return await _reply(send, 200, b"", _TEXT, [("allow", allow)])
        if method not in allow.split(", ") or path == "/score":
            message = f"{method} is not allowed on {path}; use {allow}."
            return await _json(send, 405, {"message": message}, [("allow", allow)])
        if path == "/":
            return await _reply(send, 200, b"Healthy", _TEXT, head=method == "HEAD")
        if self.ready:
            return await _json(send, 200, {"status": "ready"}, head=method == "HEAD")
        return await _json(send, 503, {"status": "loading", "message": "init() has not finished yet."})

    async def _score(self, scope: Scope, receive: Receive, send: Send, started: float) -> tuple[int, int, str]:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            request_id, id_headers = request_ids(headers)
        except ScorehostError as error:
            return (*await _json(send, error.status_code, {"message": error.message}), "")
        extra = [_SERVER, *id_headers]
        try:
            body = await _read_body(receive, headers.get("content-length"), self.max_body_size)
            request = ScoreRequest(
                method=scope["method"],
                body=body,
                query=scope["query_string"].decode("latin-1"),
                content_type=headers.get("content-type", ""),
                raw_headers=scope["headers"],
            )
            payload, content_type, run_ms = await self.executor.submit(
                self._run, request, deadline=started + self.timeout, request_id=request_id, started=started
            )
        except ScorehostError as error:
            self._log_failure(error, request_id)
            failed = isinstance(error, RunFailed | ScoringTimeout)
            extra.append(("x-ms-run-function-failed", str(failed)))
            if isinstance(error, PayloadTooLarge):
                extra.append(("connection", "close"))
            return (*await _json(send, error.status_code, {"message": error.message}, extra), request_id)
        extra += [("x-ms-run-function-failed", "False"), ("x-ms-run-fn-exec-ms", f"{run_ms:.3f}")]
        return (*await _reply(send, 200, payload, content_type, extra), request_id)

    def _run(self, request: ScoreRequest) -> tuple[bytes, str, float]:
        """The part of a request that runs on a run thread: parse the input, call run(), encode."""
        script = self.script
        if script is None:  # requests queue behind loading, so only one that outlived a failed load gets here
            raise ServiceUnavailable("The entry script is not loaded: init() has not finished, or it failed.")
        data = build_run_input(script.run_input.rule, request)
        begun = time.perf_counter()
        result = script.call(data, title_case_headers(request.raw_headers) if script.wants_headers else None)
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


async def _read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    too_large = PayloadTooLarge(f"The body is larger than the {limit}-byte limit; send less, or raise --max-body-size.")
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise too_large  # refused before reading, so a client that sent Expect: 100-continue sends nothing
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _json(
    send: Send,
    status: int,
    content: object,
    headers: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
) -> tuple[int, int]:
    return await _reply(send, status, orjson.dumps(content), JSON, headers, head=head)


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
) -> tuple[int, int]:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers or ()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})
    return status, len(body)
