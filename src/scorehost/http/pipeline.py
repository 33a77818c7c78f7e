"""The steps every request passes, on every route and status: `begin` and `finish`, and errors as answers.

`begin` gives the request its ids and trace (and, with data collection on, its mark); `finish` puts on the
headers every answer carries (the reference's `x-ms-request-id`, `x-request-id`, `x-ms-server-version`,
`x-ms-run-function-failed`, and `traceresponse`), CORS, strips a HEAD answer's body, and writes the access line,
the metrics, the span and the collected payloads. An answer that skips them cannot be made: the app's three ways
in (`ScoringApp.respond`, `respond_later`, `respond_async`) each start with `begin` and end with `finish`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from scorehost import __version__
from scorehost.errors import (
    HeaderFieldsTooLarge,
    IncompleteBody,
    PayloadTooLarge,
    QueueTimeout,
    RequestTimeout,
    RunFailed,
    ScorehostError,
    ScoringTimeout,
    ServiceUnavailable,
    TooManyRequests,
    URITooLong,
)
from scorehost.host.inputs import ScoreRequest
from scorehost.host.loader import format_user_traceback
from scorehost.http.cors import CorsPolicy
from scorehost.http.metrics import ServerMetrics
from scorehost.telemetry.logs import AccessLog
from scorehost.telemetry.request_ids import request_ids_of
from scorehost.telemetry.spans import RequestTimes, SpanExporter
from scorehost.telemetry.tracecontext import TraceContext, trace_id_var

if TYPE_CHECKING:
    from scorehost.collection.session import RequestMark
    from scorehost.http.collecting import PayloadCollection

__all__ = ["Answer", "Body", "Exchange", "Headers", "Pipeline", "json_answer", "reply"]

Headers = list[tuple[str, str]]
Body = bytes | Iterator[bytes]
Answer = tuple[int, Headers, Body]

logger = logging.getLogger("scorehost.worker")

FAILED_HEADER = "x-ms-run-function-failed"
RUN_TIME_HEADER = "x-ms-run-fn-exec-ms"  # run()'s own time, in ms (the Ray front reads it back)
JSON = "application/json"
_SERVER = ("x-ms-server-version", f"scorehost/{__version__}")
_NOT_FAILED = (FAILED_HEADER, "False")
_FAILED = (FAILED_HEADER, "True")
# The reference's words for a run() that raised: what it raised stays in the log (--debug-errors sends it).
RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
# gunicorn's limits, which the reference's clients live within: a request line of 4094 bytes, a field of 8190.
MAX_TARGET = 4094
MAX_HEADER_FIELD = 8190
_NEAR_FIELD_LIMIT = MAX_HEADER_FIELD - 256  # values past it are checked exactly, with their names
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."
_CLOSES = (PayloadTooLarge, IncompleteBody, RequestTimeout)


class Exchange:
    """One request on its way through the app: what came in, its ids and trace, and what its answer must say."""

    __slots__ = (
        "collect",
        "cors",
        "environ",
        "headers",
        "id",
        "method",
        "path",
        "preflight",
        "refusal",
        "request",
        "run_failed",
        "started",
        "times",
        "trace",
    )

    def __init__(self, environ: dict[str, Any], started: float) -> None:
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"]
        self.path: str = environ["PATH_INFO"]
        self.started = started
        self.id = ""
        self.headers: Headers = []  # what every answer to this request carries
        self.trace: TraceContext | None = None
        self.times: RequestTimes | None = None  # when each part happened, while spans are exported
        self.refusal: ScorehostError | None = None  # a request refused before routing (an id header too long)
        self.request: ScoreRequest | None = None
        # True/False: the x-ms-run-function-failed value; None: the answer run() built carries its own.
        self.run_failed: bool | None = False
        self.cors = True  # routing-level 404 and 405 carry no CORS headers, as on the reference
        self.preflight = False
        self.collect: RequestMark | None = None  # set while data collection is on, for scoring requests


class Pipeline:
    """`begin` and `finish` for one worker's app, with what they report to (access log, metrics, spans)."""

    def __init__(
        self,
        *,
        access_log: AccessLog,
        cors: CorsPolicy | None,
        metrics: ServerMetrics | None,
        spans: SpanExporter | None,
        debug_errors: bool,
        collection: PayloadCollection | None = None,
    ) -> None:
        self.collection = collection
        self.access_log = access_log
        self.cors = cors
        self.metrics = metrics
        self.spans = spans
        self.debug_errors = debug_errors

    def begin(self, environ: dict[str, Any]) -> Exchange:
        """The request's ids and trace; `exchange.refusal` is set when an id header must be refused (431)."""
        exchange = Exchange(environ, time.monotonic())
        exchange.id, id_headers, exchange.refusal = request_ids_of(environ)
        oversized = _oversized(environ)
        if oversized is not None:
            exchange.refusal = oversized
        trace = exchange.trace = TraceContext.continued(environ.get("HTTP_TRACEPARENT"))
        trace_id_var.set(trace.trace)  # the log lines of this request, and the script's prints, carry it
        exchange.headers = [_SERVER, *id_headers, ("traceresponse", trace.header())]
        if exchange.path == "/score":
            exchange.preflight = exchange.method == "OPTIONS"  # answered by the app, or by a @rawhttp run()
            if self.spans is not None:
                exchange.times = RequestTimes()
            if self.collection is not None:
                self.collection.begin(exchange)
        return exchange

    def finish(self, exchange: Exchange, answer: Answer) -> Answer:
        """The answer as it goes out: the headers every answer carries added, and the request accounted for."""
        status, own, body = answer
        headers = [*own, *exchange.headers]
        if exchange.run_failed is not None:
            headers.append(_FAILED if exchange.run_failed else _NOT_FAILED)
        if self.cors is not None and exchange.cors:
            headers = self._with_cors(exchange, headers)
        if exchange.method == "HEAD" and body:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # a streamed body is never read: let its generator and the response clean up
            body = b""  # the headers still give the length a GET would have
        elapsed = time.monotonic() - exchange.started
        self.access_log.write(
            exchange.method,
            exchange.path,
            status,
            elapsed * 1000,
            len(body) if isinstance(body, bytes) else -1,
            exchange.id,
        )
        if self.metrics is not None:
            self.metrics.request(exchange.path, status, elapsed)
        if exchange.times is not None and self.spans is not None and exchange.trace is not None:
            try:
                self.spans.record(exchange.trace, exchange.times, status, exchange.id, exchange.method)
            except Exception:  # a tracing failure must not fail the request it describes
                logger.exception("could not record the request's spans")
        if exchange.collect is not None and self.collection is not None:
            try:
                self.collection.finish(exchange, status, headers, body)
            except Exception:  # neither may data collection
                logger.exception("could not collect the request's payloads", extra={"request_id": exchange.id})
        return status, headers, body

    def failed(self, exchange: Exchange, error: ScorehostError) -> Answer:
        """The answer to a request that failed with `error`; what user code raised stays in the log."""
        self._log_failure(error, exchange.id)
        # A request that timed out while queued never ran: not a failed run.
        exchange.run_failed = isinstance(error, RunFailed) or (
            isinstance(error, ScoringTimeout) and not isinstance(error, QueueTimeout)
        )
        message = error.message
        if isinstance(error, RunFailed) and not self.debug_errors:
            message = RUN_FAILED_MESSAGE
        extra: Headers = []
        if isinstance(error, _CLOSES):  # what is left of the body on the connection is not read
            extra.append(("connection", "close"))
        elif isinstance(error, ServiceUnavailable | TooManyRequests):
            extra.append(("retry-after", "1"))
        return json_answer(error.status_code, {"message": message}, extra)

    def internal_error(self, exchange: Exchange) -> Answer:
        """The answer when scorehost itself failed (a bug): the traceback goes to the log, never to the caller."""
        logger.exception(
            "unexpected error while answering %s %s", exchange.method, exchange.path, extra={"request_id": exchange.id}
        )
        exchange.run_failed = False
        return json_answer(500, {"message": INTERNAL_ERROR_MESSAGE})

    def refused(self, exchange: Exchange) -> Answer | None:
        """The answer to a request refused before routing, if it was."""
        if exchange.refusal is None:
            return None
        return self.failed(exchange, exchange.refusal)

    def _with_cors(self, exchange: Exchange, headers: Headers) -> Headers:
        assert self.cors is not None
        environ = exchange.environ
        origin = environ.get("HTTP_ORIGIN")
        if exchange.preflight:
            method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
            extra = self.cors.preflight_headers(origin, method, environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
        else:
            extra = self.cors.response_headers(origin)
        if not extra:
            return headers
        present = {name.lower() for name, _ in headers}
        for name, value in extra:
            if name.lower() == "vary" and "vary" in present:  # the script's own Vary keeps ours too
                headers = [(n, f"{v}, {value}" if n.lower() == "vary" and value not in v else v) for n, v in headers]
            elif name.lower() not in present:  # what run() set itself wins
                headers.append((name, value))
        return headers

    def _log_failure(self, error: ScorehostError, request_id: str) -> None:
        extra = {"request_id": request_id}
        if isinstance(error, RunFailed) and error.__cause__ is not None:
            logger.error("%s\n%s", error.message, format_user_traceback(error.__cause__), extra=extra)
        elif error.status_code >= 500:
            logger.error("%s", error.message, extra=extra)
        else:
            logger.info("rejected: %s", error.message, extra=extra)


def _oversized(environ: dict[str, Any]) -> ScorehostError | None:
    """A request line or header field past the reference's limits (gunicorn's), refused with the headers every
    answer carries. Heads past granian's own buffer (about 400 KiB) are refused by granian before any of this."""
    if len(environ["PATH_INFO"]) + len(environ.get("QUERY_STRING", "")) > MAX_TARGET:
        return URITooLong(f"The request's path and query are longer than {MAX_TARGET} bytes; send the input as a body.")
    for value in environ.values():  # the usual case, in well under a microsecond: no value is anywhere near
        if type(value) is str and len(value) > _NEAR_FIELD_LIMIT:
            break
    else:
        return None
    for key, value in environ.items():
        if key[:5] == "HTTP_" and len(key) - 5 + 2 + len(value) > MAX_HEADER_FIELD:  # "Name: value"
            name = key[5:].replace("_", "-").lower()
            return HeaderFieldsTooLarge(f"The {name} header is longer than {MAX_HEADER_FIELD} bytes.")
    return None


def json_answer(status: int, content: object, headers: Headers | None = None) -> Answer:
    return reply(status, orjson.dumps(content), JSON, headers)


def reply(status: int, body: bytes, content_type: str, headers: Headers | None = None) -> Answer:
    return status, [("content-type", content_type), ("content-length", str(len(body))), *(headers or ())], body
