"""The WSGI application of one worker: health, `/score` in front of the host, and the API documents.

Every request passes the same pipeline (`http/pipeline.py`): `begin` (ids, trace) → this app's answer →
`finish` (the headers every answer carries, CORS, access line, metrics, span). The three ways in differ only
in how a scoring request reaches run(): `respond` calls it on the request's thread, `respond_later` may hand
it to a batch thread that answers it, and `respond_async` awaits its batch on an event loop (a Ray replica).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Response

from scorehost.errors import ScorehostError, ServiceUnavailable
from scorehost.host.batch import BatchSettings
from scorehost.host.encode import encode_result
from scorehost.host.entry import EntryScript, RunMode
from scorehost.host.inputs import ScoreRequest
from scorehost.host.prepared import Prepared
from scorehost.http.batching.calls import BatchCalls
from scorehost.http.batching.loop import LoopBatcher
from scorehost.http.batching.threads import ThreadBatcher
from scorehost.http.body_watch import BodyWatch
from scorehost.http.collecting import PayloadCollection
from scorehost.http.cors import CorsPolicy
from scorehost.http.docs_page import DocsPage
from scorehost.http.gate import RunGate
from scorehost.http.metrics import ServerMetrics
from scorehost.http.pipeline import (
    FAILED_HEADER,
    JSON,
    RUN_TIME_HEADER,
    Answer,
    Exchange,
    Headers,
    Pipeline,
    json_answer,
    reply,
)
from scorehost.http.raw import RAW_METHODS, response_parts
from scorehost.http.wsgi_request import score_request
from scorehost.schema.swagger import SwaggerDocs
from scorehost.telemetry.logs import AccessLog
from scorehost.telemetry.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from scorehost.telemetry.spans import SpanExporter
from scorehost.telemetry.tracecontext import trace_id_var

__all__ = ["ScoringApp"]

StartResponse = Callable[..., Any]

logger = logging.getLogger("scorehost.worker")

_ALLOW = {
    "/": "GET, HEAD, OPTIONS",
    "/live": "GET, HEAD, OPTIONS",
    "/ready": "GET, HEAD, OPTIONS",
    "/score": "GET, POST, OPTIONS",
    "/swagger.json": "GET, HEAD, OPTIONS",
    "/metrics": "GET, HEAD, OPTIONS",
}
_ROUTES = "GET / (ready), GET /live, GET /ready, GET|POST /score, GET /swagger.json, GET /docs, GET /metrics"
_RAW_ALLOW = ", ".join(RAW_METHODS)
_SCORE_METHODS = ("GET", "POST")
_TEXT = "text/plain; charset=utf-8"
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


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
        debug_errors: bool = False,
        nan_as_null: bool = False,
        body_watch: BodyWatch | None = None,
        collection: PayloadCollection | None = None,
    ) -> None:
        self.gate = gate
        self.body_watch = body_watch  # ends body reads past the body timeout (granian's reader has none)
        self.metrics = metrics
        # Made when a script with run_batch() is attached: the same batches, run from a worker's request threads
        # (`respond_later`) or from an event loop (`respond_async`, a Ray replica).
        self.batching: BatchSettings | None = None
        self.thread_batcher: ThreadBatcher | None = None
        self.loop_batcher: LoopBatcher | None = None
        self._batch_size = batch_size  # None: the script's own (or the default); 0: never batch
        self._batch_wait_ms = batch_wait_ms
        self.timeout = timeout
        self.max_body_size = max_body_size
        self._cors_origins = cors_origins
        self.pipeline = Pipeline(
            access_log=access_log or AccessLog(enabled=False),
            cors=CorsPolicy.parse(cors_origins),
            metrics=metrics,
            spans=spans,
            debug_errors=debug_errors,
            collection=collection,
        )
        self.nan_as_null = nan_as_null
        self.docs = docs
        self._make_swagger = swagger
        self.swagger: SwaggerDocs | None = None
        self.script: EntryScript | None = None
        self._score_methods: tuple[str, ...] = _SCORE_METHODS

    @property
    def access_log(self) -> AccessLog:
        return self.pipeline.access_log

    @property
    def spans(self) -> SpanExporter | None:
        return self.pipeline.spans

    def close(self) -> None:
        """Flush what this worker still holds: its access log, metrics, spans and collected rows."""
        self.access_log.flush()
        if self.metrics is not None:
            self.metrics.flush()
        if self.spans is not None:
            self.spans.close()
        if self.pipeline.collection is not None:
            self.pipeline.collection.close()

    def attach(self, script: EntryScript) -> None:
        """Serve `script` from now on (loaded, and initialised unless a test wants otherwise)."""
        if self._make_swagger is not None:
            self.swagger = self._make_swagger(script)
        self._score_methods = RAW_METHODS if script.mode is RunMode.RAW else _SCORE_METHODS
        self.pipeline.cors = CorsPolicy.parse(self._cors_origins, methods=self._score_methods)
        self._attach_batcher(script)
        self.script = script

    @property
    def ready(self) -> bool:
        return self.script is not None and self.script.initialized

    # The ways in.

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI interface (tests, other WSGI servers); the granian front calls `respond()` directly."""
        status, headers, body = self.respond(environ)
        start_response(_STATUS_LINES.get(status, str(status)), headers)
        return [body] if isinstance(body, bytes) else body

    def respond(self, environ: dict[str, Any]) -> Answer:
        """Answer one request: status, headers and the body (bytes, or an iterator that streams). Scoring runs
        one request per run() call here; `respond_later` and `respond_async` batch."""
        pipeline = self.pipeline
        exchange = pipeline.begin(environ)
        try:
            answer = pipeline.refused(exchange) or self._answer(exchange)
        except Exception:
            answer = pipeline.internal_error(exchange)
        return pipeline.finish(exchange, answer)

    def respond_later(self, environ: dict[str, Any], send: Callable[[Answer], None]) -> None:
        """`respond` for a front that takes answers from any thread: a scoring request of a script with
        run_batch() joins a batch, and `send` may be called on the thread that runs it (or returns before it);
        every other request is answered here, on this thread."""
        batcher = self.thread_batcher
        if batcher is None or not self._scores(environ):
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
        pipeline = self.pipeline
        exchange = pipeline.begin(environ)
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()

        def done(answer: Answer) -> None:
            if metrics is not None:
                metrics.in_flight.dec()
            send(pipeline.finish(exchange, answer))

        try:
            refused = pipeline.refused(exchange)
            if refused is not None:
                done(refused)
                return
            with batcher.coming():  # a running batch may wait for this one to join it
                prepared = self._prepared(exchange)
        except ScorehostError as error:
            done(pipeline.failed(exchange, error))
            return
        except Exception:
            done(pipeline.internal_error(exchange))
            return
        trace_id = exchange.trace.trace if exchange.trace is not None else ""

        def deliver(result: object, error: BaseException | None, run_ms: float) -> None:
            prepared.close()
            token = trace_id_var.set(trace_id)  # maybe another request's thread: log under this one's trace
            try:
                done(self._batched_answer(exchange, result, error, run_ms))
            finally:
                trace_id_var.reset(token)

        batcher.submit(
            prepared,
            deadline=exchange.started + self.timeout,
            started=exchange.started,
            request_id=exchange.id,
            deliver=deliver,
            backlogged=backlogged,
        )

    async def respond_async(self, environ: dict[str, Any]) -> Answer:
        """`respond` on an event loop: scoring requests of a script with run_batch() join batches."""
        batcher = self.loop_batcher
        if batcher is None or not self._scores(environ):
            return self.respond(environ)
        pipeline = self.pipeline
        exchange = pipeline.begin(environ)
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        try:
            answer = pipeline.refused(exchange) or await self._score_batched(exchange, batcher)
        except Exception:
            answer = pipeline.internal_error(exchange)
        finally:
            if self.metrics is not None:
                self.metrics.in_flight.dec()
        return pipeline.finish(exchange, answer)

    # Answers.

    def _scores(self, environ: Mapping[str, Any]) -> bool:
        return environ["PATH_INFO"] == "/score" and environ["REQUEST_METHOD"] in self._score_methods

    def _answer(self, exchange: Exchange) -> Answer:
        if self._scores(exchange.environ):
            if self.metrics is None:
                return self._score(exchange)
            self.metrics.in_flight.inc()
            try:
                return self._score(exchange)
            finally:
                self.metrics.in_flight.dec()
        return self._route(exchange)

    def _route(self, exchange: Exchange) -> Answer:
        path, method = exchange.path, exchange.method
        allow = _ALLOW.get(path)
        if allow is None:
            if self.docs is not None and (page := self.docs.answer(path, method)) is not None:
                return page
            exchange.cors = False
            return json_answer(404, {"message": f"No route {path}. Routes: {_ROUTES}."})
        if path == "/score" and self._score_methods is RAW_METHODS:
            allow = _RAW_ALLOW
        if method == "OPTIONS":
            return reply(200, b"", _TEXT, [("allow", allow)])
        if method not in allow.split(", ") or path == "/score":
            exchange.cors = False
            return json_answer(405, {"message": f"{method} is not allowed on {path}; use {allow}."}, [("allow", allow)])
        if path == "/":  # "ready", as on the reference, where nothing answers before init() has returned
            if self.ready:
                return reply(200, b"Healthy", _TEXT)
            return json_answer(503, {"message": "init() has not finished yet; GET /live answers while it runs."})
        if path == "/live":
            return json_answer(200, {"status": "alive"})
        if path == "/swagger.json":
            return self._swagger(exchange)
        exchange.cors = False
        if path == "/metrics":
            if self.metrics is None:
                return json_answer(404, {"message": "Metrics are off (--no-metrics)."})
            return reply(200, self.metrics.exposition(), METRICS_CONTENT_TYPE)
        if self.ready:
            return json_answer(200, {"status": "ready"})
        return json_answer(503, {"status": "loading", "message": "init() has not finished yet."})

    def _swagger(self, exchange: Exchange) -> Answer:
        if self.swagger is None:
            return json_answer(
                503, {"message": "The entry script is still loading; its API document comes once it has."}
            )
        version = None
        for key, value in parse_qsl(exchange.environ.get("QUERY_STRING", ""), keep_blank_values=True):
            if key == "version":
                version = value
                break
        status, document = self.swagger.answer(version)
        return reply(status, document, JSON)

    def _score(self, exchange: Exchange) -> Answer:
        try:
            request = exchange.request = self._request(exchange)
            status, headers, body, run_ms = self.gate.run(
                self._run,
                exchange,
                request,
                deadline=exchange.started + self.timeout,
                started=exchange.started,
                request_id=exchange.id,
            )
        except ScorehostError as error:
            return self.pipeline.failed(exchange, error)
        headers.append((RUN_TIME_HEADER, f"{run_ms:.3f}"))
        return status, headers, body

    def _run(self, exchange: Exchange, request: ScoreRequest) -> tuple[int, Headers, Any, float]:
        """The part of a request that touches user code: build run()'s input, call it, encode the result."""
        metrics = self.metrics
        if metrics is not None:
            metrics.queue_wait.observe(time.monotonic() - exchange.started)
        prepared = self._loaded().prepare(request)
        begun = time.perf_counter()
        try:
            result = prepared.call()
        finally:
            ended = time.perf_counter()
            prepared.close()  # spooled upload files, if a raw script parsed a multipart body
            if metrics is not None:  # every call, a failed one too: as many as the queue histogram counts
                metrics.run_time.observe(ended - begun)
        run_ms = (ended - begun) * 1000
        answer = self._result_answer(exchange, result)
        times = exchange.times
        if times is not None:
            times.run_began, times.ran, times.encoded = begun, ended, time.perf_counter()
        return (*answer, run_ms)

    async def _score_batched(self, exchange: Exchange, batcher: LoopBatcher) -> Answer:
        try:
            with batcher.coming():  # the consumer may wait for this one to join its batch
                prepared = self._prepared(exchange)
        except ScorehostError as error:
            return self.pipeline.failed(exchange, error)
        try:
            result, failure, run_ms = await batcher.submit(
                prepared, deadline=exchange.started + self.timeout, started=exchange.started, request_id=exchange.id
            )
        except ScorehostError as error:
            return self.pipeline.failed(exchange, error)
        finally:
            prepared.close()
        return self._batched_answer(exchange, result, failure, run_ms)

    def _prepared(self, exchange: Exchange) -> Prepared:
        exchange.request = self._request(exchange)
        return self._loaded().prepare(exchange.request)

    def _batched_answer(self, exchange: Exchange, result: object, error: BaseException | None, run_ms: float) -> Answer:
        """The answer to one request of a batch, from its outcome."""
        try:
            if self.metrics is not None and (error is None or run_ms):  # every call that ran, a failed one too
                run_s = run_ms / 1000
                self.metrics.run_time.observe(run_s)
                self.metrics.queue_wait.observe(max(0.0, time.monotonic() - exchange.started - run_s))
            if error is not None:
                raise error
            times = exchange.times
            if times is not None:
                times.ran = time.perf_counter()
                times.run_began = times.ran - run_ms / 1000
            status, headers, body = self._result_answer(exchange, result)
            if times is not None:
                times.encoded = time.perf_counter()
        except ScorehostError as failure:
            return self.pipeline.failed(exchange, failure)
        except Exception:
            return self.pipeline.internal_error(exchange)
        headers.append((RUN_TIME_HEADER, f"{run_ms:.3f}"))
        return status, headers, body

    def _result_answer(self, exchange: Exchange, result: object) -> Answer:
        """run()'s result as an answer: a Response run() built, or the result encoded."""
        if isinstance(result, Response):
            status, headers, body = response_parts(result)
            if status >= 500:  # a failed reply says so, whatever a Response run() built claims (as on the reference)
                exchange.run_failed = True
            elif any(name.lower() == FAILED_HEADER for name, _ in headers):
                exchange.run_failed = None  # AMLResponse(run_function_failed=...) says it itself
            else:
                exchange.run_failed = False
            if exchange.run_failed:
                headers = [(name, value) for name, value in headers if name.lower() != FAILED_HEADER]
            return status, headers, body
        encoded, content_type = encode_result(result, nan_as_null=self.nan_as_null)
        return 200, [("content-type", content_type), ("content-length", str(len(encoded)))], encoded

    def _request(self, exchange: Exchange) -> ScoreRequest:
        return score_request(
            exchange.environ,
            self.max_body_size,
            raw=self._score_methods is RAW_METHODS,
            watch=self.body_watch,
            started=exchange.started,
            answer_headers=exchange.headers,
        )

    def _loaded(self) -> EntryScript:
        script = self.script
        if script is None:  # requests wait behind loading, so only one that outlived a failed load gets here
            raise ServiceUnavailable("The entry script is not loaded: init() has not finished, or it failed.")
        return script

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
