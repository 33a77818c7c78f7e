"""The WSGI application of one worker: liveness, readiness and `/score` in front of the host."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson
from werkzeug.wrappers import Response

from scorehost import __version__
from scorehost.compat.aml_request import AMLRequest
from scorehost.errors import PayloadTooLarge, RunFailed, ScorehostError, ScoringTimeout, ServiceUnavailable
from scorehost.host.batch import BatchSettings
from scorehost.host.encode import JSON, encode_result
from scorehost.host.entry import EntryScript, RunMode
from scorehost.host.inputs import ScoreRequest, build_run_input, title_case_headers, typed_payload
from scorehost.host.loader import format_user_traceback
from scorehost.http.batching.calls import BatchCalls
from scorehost.http.batching.loop import LoopBatcher
from scorehost.http.batching.threads import ThreadBatcher
from scorehost.http.cors import CorsPolicy
from scorehost.http.docs_page import DocsPage
from scorehost.http.gate import RunGate
from scorehost.http.metrics import ServerMetrics
from scorehost.http.raw import RAW_METHODS, Body, raw_request, response_parts
from scorehost.schema.swagger import SwaggerDocs
from scorehost.telemetry.logs import AccessLog
from scorehost.telemetry.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from scorehost.telemetry.request_ids import request_ids_of
from scorehost.telemetry.spans import RequestTimes, SpanExporter
from scorehost.telemetry.tracecontext import TraceContext, trace_id_var

__all__ = ["ScoringApp"]

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, Body]

logger = logging.getLogger("scorehost.worker")

_SERVER = ("x-ms-server-version", f"scorehost/{__version__}")
_ALLOW = {
    "/": "GET, HEAD, OPTIONS",
    "/ready": "GET, HEAD, OPTIONS",
    "/score": "GET, POST, OPTIONS",
    "/swagger.json": "GET, HEAD, OPTIONS",
    "/metrics": "GET, HEAD, OPTIONS",
}
_RAW_ALLOW = ", ".join(RAW_METHODS)
_SCORE_METHODS = ("GET", "POST")
_FAILED_HEADER = "x-ms-run-function-failed"
_NOT_FAILED = (_FAILED_HEADER, "False")
_TEXT = "text/plain; charset=utf-8"
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class _Call:
    """One scoring request on its way: its id and trace, the headers every answer to it carries, the parsed
    request, and (when spans are exported) when each part of it happened."""

    __slots__ = ("headers", "id", "request", "times", "trace")

    def __init__(self, request_id: str, trace: TraceContext, headers: Headers, times: RequestTimes | None) -> None:
        self.id = request_id
        self.trace = trace
        self.headers = headers
        self.request: ScoreRequest | None = None
        self.times = times


class Prepared:
    """One request's input to run(), ready to call: alone (`call`), or with others' in a batch (`value`)."""

    __slots__ = ("headers", "script", "value")

    def __init__(self, script: EntryScript, value: object, headers: Mapping[str, str] | None) -> None:
        self.script = script
        self.value = value
        self.headers = headers

    def call(self) -> object:
        if self.script.mode is RunMode.TYPED:
            return self.script.call_typed_kwargs(self.value, self.headers)  # type: ignore[arg-type]
        return self.script.call(self.value, self.headers)

    def close(self) -> None:
        close = getattr(self.value, "close", None) if self.script.mode is RunMode.RAW else None
        if close is not None:
            close()


class ScoringApp:
    """One worker's HTTP surface. `script` is None until the host has loaded and initialised it."""

    def __init__(
        self,
        gate: RunGate,
        *,
        timeout: float,
        max_body_size: int,
        access_log: AccessLog | None = None,
        cors_origins: str | None = None,
        docs: DocsPage | None = None,
        swagger: Callable[[EntryScript], SwaggerDocs] | None = None,
        batch_size: int | None = None,
        batch_wait_ms: float | None = None,
        metrics: ServerMetrics | None = None,
        spans: SpanExporter | None = None,
    ) -> None:
        self.gate = gate
        self.metrics = metrics
        self.spans = spans
        # Made when a script with run_batch() is attached: the same batches, run from a worker's request threads
        # (`respond_later`) or from an event loop (`respond_async`, a Ray replica).
        self.batching: BatchSettings | None = None
        self.thread_batcher: ThreadBatcher | None = None
        self.loop_batcher: LoopBatcher | None = None
        self._batch_size = batch_size  # None: the script's own (or the default); 0: never batch
        self._batch_wait_ms = batch_wait_ms
        self.timeout = timeout
        self.max_body_size = max_body_size
        self.access_log = access_log or AccessLog(enabled=False)
        self._cors_origins = cors_origins
        self.cors = CorsPolicy.parse(cors_origins)
        self.docs = docs
        self._make_swagger = swagger
        self.swagger: SwaggerDocs | None = None
        self.script: EntryScript | None = None
        self._score_methods: tuple[str, ...] = _SCORE_METHODS

    def attach(self, script: EntryScript) -> None:
        """Serve `script` from now on (loaded, and initialised unless a test wants otherwise)."""
        if self._make_swagger is not None:
            self.swagger = self._make_swagger(script)
        self._score_methods = RAW_METHODS if script.mode is RunMode.RAW else _SCORE_METHODS
        self.cors = CorsPolicy.parse(self._cors_origins, methods=self._score_methods)
        self._attach_batcher(script)
        self.script = script

    @property
    def ready(self) -> bool:
        return self.script is not None and self.script.initialized

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI interface (tests, other WSGI servers); the granian front calls `respond()` directly."""
        status, headers, body = self.respond(environ)
        start_response(_STATUS_LINES.get(status, str(status)), headers)
        return [body] if isinstance(body, bytes) else body

    def respond(self, environ: dict[str, Any]) -> Answer:
        """Answer one request: status, headers and the body (bytes, or an iterator that streams). Scoring runs
        one request per run() call here; `respond_async` batches."""
        started = time.monotonic()
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if path == "/score" and method in self._score_methods:
            if self.metrics is not None:
                self.metrics.in_flight.inc()
            try:
                status, headers, body, request_id = self._score(environ, started)
            finally:
                if self.metrics is not None:
                    self.metrics.in_flight.dec()
            return self._done(method, path, started, status, headers, body, request_id)
        return self._done(method, path, started, *self._route(environ, path, method))

    def respond_later(self, environ: dict[str, Any], send: Callable[[Answer], None]) -> None:
        """`respond` for a front that takes answers from any thread: a scoring request of a script with
        run_batch() joins a batch, and `send` may be called on the thread that runs it (or returns before it);
        every other request is answered here, on this thread."""
        batcher = self.thread_batcher
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if batcher is None or path != "/score" or method not in self._score_methods:
            send(self.respond(environ))
            return
        backlogged = environ.get("scorehost.backlogged", False)
        if batcher.claim_alone(backlogged):  # an idle worker: exactly the unbatched request, run() included
            began = time.perf_counter()
            try:
                send(self.respond(environ))
            finally:
                batcher.release_alone(time.perf_counter() - began)
            return
        started = time.monotonic()
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()

        def done(status: int, headers: Headers, body: Body, request_id: str) -> None:
            if metrics is not None:
                metrics.in_flight.dec()
            send(self._done(method, path, started, status, headers, body, request_id))

        call = self._begin(environ)
        if isinstance(call, tuple):
            done(*call)
            return
        try:
            with batcher.coming():  # a running batch may wait for this one to join it
                prepared = self._parsed(environ, call)
        except ScorehostError as error:
            done(*self._failed(environ, call, error))
            return
        trace_id = call.trace.trace

        def deliver(result: object, error: BaseException | None, run_ms: float) -> None:
            prepared.close()
            token = trace_id_var.set(trace_id)  # maybe another request's thread: log under this one's trace
            try:
                done(*self._batched_answer(environ, call, started, result, error, run_ms))
            finally:
                trace_id_var.reset(token)

        batcher.submit(
            prepared,
            deadline=started + self.timeout,
            started=started,
            request_id=call.id,
            deliver=deliver,
            backlogged=backlogged,
        )

    async def respond_async(self, environ: dict[str, Any]) -> Answer:
        """`respond` on an event loop: scoring requests of a script with run_batch() join batches."""
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if self.loop_batcher is None or path != "/score" or method not in self._score_methods:
            return self.respond(environ)
        started = time.monotonic()
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        try:
            status, headers, body, request_id = await self._score_batched(environ, started, self.loop_batcher)
        finally:
            if self.metrics is not None:
                self.metrics.in_flight.dec()
        return self._done(method, path, started, status, headers, body, request_id)

    def _done(
        self, method: str, path: str, started: float, status: int, headers: Headers, body: Body, request_id: str = ""
    ) -> Answer:
        if method == "HEAD":
            if not isinstance(body, bytes):
                body.close()  # a streamed body is never read: let its generator and the response clean up
            body = b""  # the headers still give the length a GET would have
        size = len(body) if isinstance(body, bytes) else -1
        elapsed = time.monotonic() - started
        self.access_log.write(method, path, status, elapsed * 1000, size, request_id)
        if self.metrics is not None:
            self.metrics.request(path, status, elapsed)
        return status, headers, body

    def _route(self, environ: dict[str, Any], path: str, method: str) -> Answer:
        allow = _ALLOW.get(path)
        if allow is None:
            if self.docs is not None and (page := self.docs.answer(path, method)) is not None:
                return page
            known = (
                "GET / (liveness), GET /ready (readiness), GET|POST /score, GET /swagger.json, GET /docs, GET /metrics"
            )
            return _json(404, {"message": f"No route {path}. Routes: {known}."})
        if path == "/score" and self._score_methods is RAW_METHODS:
            allow = _RAW_ALLOW
        if method == "OPTIONS":
            return self._with_cors(environ, _reply(200, b"", _TEXT, [("allow", allow)]), preflight=path == "/score")
        if method not in allow.split(", ") or path == "/score":
            return _json(405, {"message": f"{method} is not allowed on {path}; use {allow}."}, [("allow", allow)])
        if path == "/":
            return self._with_cors(environ, _reply(200, b"Healthy", _TEXT))
        if path == "/swagger.json":
            return self._with_cors(environ, self._swagger(environ))
        if path == "/metrics":
            if self.metrics is None:
                return _json(404, {"message": "Metrics are off (--no-metrics)."})
            return _reply(200, self.metrics.exposition(), METRICS_CONTENT_TYPE)
        if self.ready:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "loading", "message": "init() has not finished yet."})

    def _swagger(self, environ: dict[str, Any]) -> Answer:
        if self.swagger is None:
            return _json(503, {"message": "The entry script is still loading; its API document comes once it has."})
        version = None
        for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            if key == "version":
                version = value
                break
        status, document = self.swagger.answer(version)
        return _reply(status, document, JSON, [_SERVER, (_FAILED_HEADER, "False")])

    def _with_cors(self, environ: dict[str, Any], answer: Answer, *, preflight: bool = False) -> Answer:
        if self.cors is None:
            return answer
        origin = environ.get("HTTP_ORIGIN")
        if preflight:
            method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
            extra = self.cors.preflight_headers(origin, method, environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
        else:
            extra = self.cors.response_headers(origin)
        if not extra:
            return answer
        status, headers, body = answer
        present = {name.lower() for name, _ in headers}
        merged = list(headers)
        for name, value in extra:
            if name.lower() == "vary" and "vary" in present:  # the script's own Vary keeps ours too
                merged = [(n, f"{v}, {value}" if n.lower() == "vary" and value not in v else v) for n, v in merged]
            elif name.lower() not in present:  # what run() set itself wins
                merged.append((name, value))
        return status, merged, body

    def _score(self, environ: dict[str, Any], started: float) -> tuple[int, Headers, Body, str]:
        call = self._begin(environ)
        if isinstance(call, tuple):
            return call
        try:
            call.request = self._request(environ)
            status, headers, body, run_ms = self.gate.run(
                self._run,
                call.request,
                started,
                call.times,
                deadline=started + self.timeout,
                started=started,
                request_id=call.id,
            )
        except ScorehostError as error:
            return self._failed(environ, call, error)
        return self._answered(environ, call, status, headers, body, run_ms)

    async def _score_batched(
        self, environ: dict[str, Any], started: float, batcher: LoopBatcher
    ) -> tuple[int, Headers, Body, str]:
        call = self._begin(environ)
        if isinstance(call, tuple):
            return call
        try:
            with batcher.coming():  # the consumer may wait for this one to join its batch
                prepared = self._parsed(environ, call)
        except ScorehostError as error:
            return self._failed(environ, call, error)
        try:
            result, run_ms = await batcher.submit(
                prepared, deadline=started + self.timeout, started=started, request_id=call.id
            )
        except ScorehostError as error:
            return self._failed(environ, call, error)
        finally:
            prepared.close()
        return self._batched_answer(environ, call, started, result, None, run_ms)

    def _parsed(self, environ: dict[str, Any], call: _Call) -> Prepared:
        call.request = self._request(environ)
        return self._prepare(self._loaded(), call.request)

    def _batched_answer(
        self,
        environ: dict[str, Any],
        call: _Call,
        started: float,
        result: object,
        error: BaseException | None,
        run_ms: float,
    ) -> tuple[int, Headers, Body, str]:
        """The answer to one request of a batch, from its outcome."""
        try:
            if error is not None:
                raise error
            if self.metrics is not None:
                run_s = run_ms / 1000
                self.metrics.run_time.observe(run_s)
                self.metrics.queue_wait.observe(max(0.0, time.monotonic() - started - run_s))
            if call.times is not None:
                call.times.ran = time.perf_counter()
                call.times.run_began = call.times.ran - run_ms / 1000
            status, headers, body = self._finish(result)
            if call.times is not None:
                call.times.encoded = time.perf_counter()
        except ScorehostError as failure:
            return self._failed(environ, call, failure)
        return self._answered(environ, call, status, headers, body, run_ms)

    def _begin(self, environ: dict[str, Any]) -> _Call | tuple[int, Headers, Body, str]:
        """The request's ids and trace; an answer already when its id headers are refused."""
        times = RequestTimes() if self.spans is not None else None
        try:
            request_id, id_headers = request_ids_of(environ)
        except ScorehostError as error:
            return (*_json(error.status_code, {"message": error.message}), "")
        trace = TraceContext.continued(environ.get("HTTP_TRACEPARENT"))
        trace_id_var.set(trace.trace)  # the log lines of this request, and the script's prints, carry it
        return _Call(request_id, trace, [_SERVER, *id_headers, ("traceresponse", trace.header())], times)

    def _export(self, environ: dict[str, Any], call: _Call, status: int) -> None:
        if self.spans is not None and call.times is not None:
            try:
                self.spans.record(call.trace, call.times, status, call.id, environ["REQUEST_METHOD"])
            except Exception:  # a tracing failure must not fail the request it describes
                logger.exception("could not record the request's spans")

    def _failed(self, environ: dict[str, Any], call: _Call, error: ScorehostError) -> tuple[int, Headers, Body, str]:
        self._log_failure(error, call.id)
        self._export(environ, call, error.status_code)
        extra = call.headers
        extra.append((_FAILED_HEADER, str(isinstance(error, RunFailed | ScoringTimeout))))
        if isinstance(error, PayloadTooLarge):
            extra.append(("connection", "close"))
        if isinstance(error, ServiceUnavailable):
            extra.append(("retry-after", "1"))
        return (*self._with_cors(environ, _json(error.status_code, {"message": error.message}, extra)), call.id)

    def _answered(
        self, environ: dict[str, Any], call: _Call, status: int, headers: Headers, body: Body, run_ms: float
    ) -> tuple[int, Headers, Body, str]:
        headers += call.headers
        headers.append(("x-ms-run-fn-exec-ms", f"{run_ms:.3f}"))
        self._export(environ, call, status)
        answer = (status, headers, body)
        if self.cors is not None and call.request is not None:
            answer = self._with_cors(environ, answer, preflight=call.request.method == "OPTIONS")
        return (*answer, call.id)

    def _request(self, environ: dict[str, Any]) -> ScoreRequest:
        return ScoreRequest(
            method=environ["REQUEST_METHOD"],
            body=_read_body(environ, self.max_body_size),
            query=environ.get("QUERY_STRING", ""),
            content_type=environ.get("CONTENT_TYPE", ""),
            environ=environ,
        )

    def _loaded(self) -> EntryScript:
        script = self.script
        if script is None:  # requests wait behind loading, so only one that outlived a failed load gets here
            raise ServiceUnavailable("The entry script is not loaded: init() has not finished, or it failed.")
        return script

    @staticmethod
    def _prepare(script: EntryScript, request: ScoreRequest) -> Prepared:
        """What run() will be called with for this request (a 400 when the body does not fit the script)."""
        headers = title_case_headers(request.environ) if script.wants_headers else None
        if script.mode is RunMode.PLAIN:
            return Prepared(script, build_run_input(script.run_input.rule, request), headers)
        if script.mode is RunMode.TYPED:
            assert script.typed is not None
            arguments = script.typed.build_kwargs(typed_payload(request, script.typed_parameters))
            return Prepared(script, arguments, headers)
        return Prepared(script, raw_request(AMLRequest, request.environ, request.body), headers)

    def _run(
        self, request: ScoreRequest, started: float, times: RequestTimes | None = None
    ) -> tuple[int, Headers, Body, float]:
        """The part of a request that touches user code: build run()'s input, call it, encode the result."""
        metrics = self.metrics
        if metrics is not None:
            metrics.queue_wait.observe(time.monotonic() - started)
        prepared = self._prepare(self._loaded(), request)
        try:
            begun = time.perf_counter()
            result = prepared.call()
            ended = time.perf_counter()
            run_ms = (ended - begun) * 1000
        finally:
            prepared.close()  # spooled upload files, if a raw script parsed a multipart body
        if metrics is not None:
            metrics.run_time.observe(run_ms / 1000)
        answer = self._finish(result)
        if times is not None:
            times.run_began, times.ran, times.encoded = begun, ended, time.perf_counter()
        return (*answer, run_ms)

    def _attach_batcher(self, script: EntryScript) -> None:
        """Batch requests when the script defines run_batch() and the settings do not turn it off."""
        self.batching = self.thread_batcher = self.loop_batcher = None
        if script.run_batch_function is None or script.batch is None or self._batch_size == 0:
            return
        self.batching = BatchSettings(
            self._batch_size or script.batch.max_batch_size,
            script.batch.max_wait_ms if self._batch_wait_ms is None else self._batch_wait_ms,
        )

        def call_batch(values: list[Prepared]) -> list[object]:
            return script.call_batch([script.batch_input(value.value) for value in values])

        on_batch = self.metrics.batch_size.observe if self.metrics is not None else None
        calls = BatchCalls(self.gate, self.batching, call_batch, Prepared.call, on_batch)
        self.thread_batcher = ThreadBatcher(calls)
        self.loop_batcher = LoopBatcher(calls)

    @staticmethod
    def _finish(result: object) -> Answer:
        """run()'s result as an answer: a Response run() built, or the result encoded."""
        if isinstance(result, Response):
            status, response_headers, body = response_parts(result)
            if status >= 500:  # a failed reply says so, whatever a Response run() built claims (as on the reference)
                response_headers = [(k, v) for k, v in response_headers if k.lower() != _FAILED_HEADER]
                response_headers.append((_FAILED_HEADER, "True"))
            elif not any(name.lower() == _FAILED_HEADER for name, _ in response_headers):
                response_headers.append((_FAILED_HEADER, "False"))
            return status, response_headers, body
        encoded, content_type = encode_result(result)
        length = str(len(encoded))
        return 200, [("content-type", content_type), ("content-length", length), _NOT_FAILED], encoded

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


def _json(status: int, content: object, headers: Headers | None = None) -> Answer:
    return _reply(status, orjson.dumps(content), JSON, headers)


def _reply(status: int, body: bytes, content_type: str, headers: Headers | None = None) -> Answer:
    return status, [("content-type", content_type), ("content-length", str(len(body))), *(headers or ())], body
