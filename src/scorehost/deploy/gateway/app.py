"""What the gateway does with one request: `/endpoints/<name>/{score,swagger.json,docs}` to a deployment.

From the request's headers alone (`decide`, before a byte of the body is read): find the endpoint in the
current routing table, check its key, pick a deployment (the `azureml-model-deployment` header, else a
weighted draw) and its next instance. Once the body is in (`seal`), forward with the path rewritten, and
pass the answer back as it came (status, headers, body), with `azureml-model-deployment: <deployment>` added
as Azure ML's endpoints add it; a `/swagger.json` answer is rewritten for the endpoint (`documents.py`). The docs
page, its assets and the document hold no secret: a browser opens them (GET, HEAD) without the endpoint's key,
which the page's Authorize box then sends to /score. Answers of its own are JSON `{"error": ...}`:
401 key, 404 endpoint or deployment, 502 unreachable, 503 no instance, 504 deadline (413, 408 and 431 are
the server's, `protocol.py`). A 5xx that did not come from scorehost's host (without its
`x-ms-run-function-failed`: Serve's ingress or its HAProxy answering for a replica that died, or whose queue
is full) becomes the gateway's own 502, 503 or 504 (`unhosted`), so a caller can tell it from a script's
failure. A copy of mirror_percent of the requests goes to the mirror, fire-and-forget.
Headers stay bytes end to end: no decoding on the request path.
With an OTLP endpoint, each forwarded request is also a span (`scorehost.telemetry.spans`), its id the parent
id the gateway forwards in `traceparent`.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from scorehost import __version__
from scorehost.deploy.gateway.documents import endpoint_document
from scorehost.deploy.gateway.metrics import GatewayMetrics
from scorehost.deploy.gateway.routes import DeploymentRoute, EndpointRoute, RouteFile, Target
from scorehost.deploy.gateway.upstream import UpstreamError, UpstreamPool, UpstreamTimeout
from scorehost.deploy.keys import bearer_token, key_matches
from scorehost.deploy.spec import AuthMode
from scorehost.telemetry.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from scorehost.telemetry.request_ids import new_request_id
from scorehost.telemetry.spans import SpanExporter
from scorehost.telemetry.tracecontext import TraceContext

__all__ = ["Answer", "Forward", "GatewayApp", "error_answer", "hosted", "upstream_error"]

logger = logging.getLogger("scorehost.gateway")

Headers = list[tuple[bytes, bytes]]  # names in lower case
Answer = tuple[int, bytes, bytes]  # status, header lines ("name: value\r\n" each), body

_PREFIX = b"/endpoints/"
# Not forwarded: hop-by-hop headers, what the gateway recomputes (host, content-length), and the caller's key.
_DROP = frozenset(
    {
        b"authorization",
        b"connection",
        b"content-length",
        b"expect",  # answered by the gateway itself (100 Continue)
        b"host",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"x-forwarded-for",
        b"traceparent",  # replaced: the gateway is a hop of the trace
    }
)
_MAX_MIRRORS_IN_FLIGHT = 64  # beyond this, copies are dropped: a slow mirror must not pile up memory
_MAX_MIRROR_BYTES = 64 * 1024 * 1024  # nor the bodies of the copies in flight
_CHALLENGE = b"www-authenticate: Bearer\r\n"
_RETRY = b"retry-after: 1\r\n"
# Every answer of scorehost's host carries it (http/pipeline.py); an answer without it came from something between
# the gateway and the host: Serve's ingress, or its HAProxy, which answers for a replica that died with a plain-text
# "500 Internal Server Error" (it turns its own 502, 503 and 504 into that).
_HOSTED = b"\nx-ms-run-function-failed:"
_SERVER = b"x-ms-server-version: scorehost/%s\r\n" % __version__.encode()
_NOT_FAILED = b"x-ms-run-function-failed: False\r\n"


class Forward:
    """A request routed to an instance: its pool, its head as forwarded (the request line and headers, but
    for host and content-length) and, once sealed, the bytes to send; names for error messages and spans,
    the request's trace context, what followed `/endpoints/<name>/` (`score`, `docs/...`), the deployment
    that gets a copy (or None), the body bytes the connection reserved for it (`protocol.py`), the header
    line the answer gets (`DeploymentRoute.served`) and, for `swagger.json`, the endpoint it describes."""

    __slots__ = (
        "data",
        "deployment",
        "document",
        "endpoint",
        "head",
        "mirror",
        "pool",
        "request_id",
        "reserved",
        "rest",
        "served",
        "trace",
    )

    def __init__(
        self,
        pool: UpstreamPool,
        head: bytes,
        endpoint: str,
        deployment: str,
        request_id: bytes,
        trace: TraceContext,
        rest: bytes,
        mirror: DeploymentRoute | None,
        served: bytes = b"",
        document: EndpointRoute | None = None,
    ) -> None:
        self.pool, self.head, self.endpoint, self.deployment = pool, head, endpoint, deployment
        self.request_id, self.trace, self.rest, self.mirror = request_id, trace, rest, mirror
        self.served, self.document = served, document
        self.data = b""
        self.reserved = 0


def error_answer(status: int, message: str, request_id: bytes, *extra: bytes) -> Answer:
    """The gateway's own answer: JSON `{"error": message}` with the request's id (`extra`: header lines)."""
    head = b"content-type: application/json\r\nx-request-id: %s\r\n%s" % (request_id, b"".join(extra))
    return status, head, orjson.dumps({"error": message})


def upstream_error(status: int, message: str, request_id: bytes, *extra: bytes) -> Answer:
    """The gateway's answer in place of a deployment's: `error_answer` with the headers every answer of the host
    carries (`x-ms-run-function-failed: False`: the script did not fail, as far as anyone knows)."""
    ids = b"x-ms-request-id: %s\r\n" % request_id
    return error_answer(status, message, request_id, _SERVER, ids, _NOT_FAILED, *extra)


def hosted(headers: bytes) -> bool:
    """Whether an answer's header lines come from scorehost's host (`x-ms-run-function-failed` is among them)."""
    return _HOSTED in b"\n" + headers.lower()


class GatewayApp:
    """One per gateway worker process: the routing table, and keep-alive pools to the instances."""

    def __init__(
        self,
        routes: RouteFile,
        *,
        timeout: float = 60.0,
        metrics: GatewayMetrics | None = None,
        spans: SpanExporter | None = None,
    ) -> None:
        self.routes = routes
        self.timeout = timeout
        self.metrics = metrics
        self.spans = spans
        self._pools: dict[Target, UpstreamPool] = {}
        self._table = routes.table
        self._mirrors: set[asyncio.Task[None]] = set()
        self._mirror_bytes = 0

    def failed(self, forward: Forward, error: Exception) -> Answer:
        """The answer when the instance could not be reached (502) or did not answer in time (504)."""
        where = f"endpoint {forward.endpoint}, deployment {forward.deployment} ({forward.pool.where})"
        if isinstance(error, UpstreamTimeout):
            logger.warning("%s: no answer in time", where)
            message = f"deployment {forward.deployment!r} did not answer within {self.timeout:g} s"
            return upstream_error(504, message, forward.request_id)
        logger.warning("[%s] %s: %s", forward.request_id.decode("latin-1"), where, error)
        # The reason names the instance's address (a socket path): the log has it, the caller does not.
        message = f"deployment {forward.deployment!r} cannot be reached; the gateway's log has the reason"
        return upstream_error(502, message, forward.request_id)

    def unhosted(self, forward: Forward, answer: Answer) -> Answer:
        """A 5xx as it came when scorehost's host gave it (a script's failure); else, given by what stands between
        (Serve's ingress, its HAProxy), the gateway's own: 503 for a full queue or no replica to take it (Serve's
        own 503; retry), 504 for a deadline, 502 for a request lost with its replica (HAProxy's "500 Internal
        Server Error", which stands for its 502, 503 and 504 alike). What it said goes to the log only."""
        status, headers, body = answer
        if hosted(headers):
            return answer
        where = f"endpoint {forward.endpoint}, deployment {forward.deployment} ({forward.pool.where})"
        said = body[:200].decode("utf-8", "replace")
        request_id = forward.request_id.decode("latin-1")
        logger.warning("[%s] %s answered %d, not from its host: %r", request_id, where, status, said)
        name = forward.deployment
        if status == 503:
            message = f"deployment {name!r} cannot take the request now: its queue is full, or no replica is up; retry"
            return upstream_error(503, message, forward.request_id, _RETRY)
        if status == 504:
            return upstream_error(504, f"deployment {name!r} did not answer in time", forward.request_id)
        message = f"deployment {name!r} lost the request: the replica answering it stopped or failed; retry"
        return upstream_error(502, message, forward.request_id)

    def document(self, forward: Forward, answer: Answer) -> Answer:
        """The deployment's answer to `swagger.json`, its document rewritten for the endpoint (`documents.py`)."""
        endpoint = forward.document
        status, headers, body = answer
        if endpoint is None or status != 200 or b"content-encoding:" in headers.lower():
            return answer
        try:
            rewritten = endpoint_document(body, endpoint.name, key=endpoint.auth is AuthMode.KEY)
        except Exception:  # a document we cannot read goes out as it came: it is the deployment's
            logger.exception("could not rewrite the API document of endpoint %s", endpoint.name)
            return answer
        return answer if rewritten is None else (status, headers, rewritten)

    def traced(self, forward: Forward, method: bytes, status: int, seconds: float) -> None:
        """Export the gateway's span of a forwarded request, answered `status` after `seconds` (spans on)."""
        if self.spans is None:
            return
        # One wall-clock reading, at the end: the start is derived from the monotonic time the request took.
        end = time.time_ns()
        attributes = {
            "scorehost.endpoint": forward.endpoint,
            "scorehost.deployment": forward.deployment,
            "scorehost.request_id": forward.request_id.decode("latin-1"),
        }
        try:
            self.spans.server_span(
                forward.trace,
                method.decode("latin-1"),
                _route_template(forward.rest),
                status,
                end - int(seconds * 1e9),
                end,
                attributes,
            )
        except Exception:  # a span lost is no reason to fail the connection: the answer has gone out already
            logger.exception("could not record the request's span")

    def decide(self, method: bytes, url: bytes, headers: Headers, client: bytes) -> Answer | Forward:
        """From a request's line and headers: the gateway's own answer, or where to forward it."""
        path, _, query = url.partition(b"?")
        if path == b"/":  # liveness, as the scoring server answers it
            return 200, b"content-type: text/plain; charset=utf-8\r\n", b"Healthy"
        if path == b"/metrics" and self.metrics is not None:
            return 200, b"content-type: %s\r\n" % METRICS_CONTENT_TYPE.encode(), self.metrics.exposition()
        request_id = b""
        authorization = deployment_header = None
        forwarded_for = b""
        traceparent: bytes | None = None
        # HEAD goes upstream as GET: the answer parser cannot know that a HEAD answer has no body
        lines = [b"GET " if method == b"HEAD" else b"%s " % method]  # path filled in below
        for key, value in headers:
            if key in _DROP:
                if key == b"authorization":
                    authorization = value
                elif key == b"x-forwarded-for":
                    forwarded_for = value + b", "
                elif key == b"traceparent":
                    traceparent = value
                continue
            if key == b"x-request-id":
                request_id = value
            elif key == b"azureml-model-deployment":
                deployment_header = value
            lines.append(b"%s: %s\r\n" % (key, value))
        if not request_id:
            request_id = new_request_id().encode()
            lines.append(b"x-request-id: %s\r\n" % request_id)
        lines.append(b"x-forwarded-for: %s%s\r\n" % (forwarded_for, client))
        trace = TraceContext.continued(traceparent.decode("latin-1") if traceparent else None)
        lines.append(b"traceparent: %s\r\n" % trace.header().encode())
        if not path.startswith(_PREFIX):
            return error_answer(
                404, f"no route for {_text(path)}; scoring URIs are /endpoints/<name>/score", request_id
            )
        raw_name, _, rest = path[len(_PREFIX) :].partition(b"/")
        name = _text(raw_name)
        score = rest == b"score"
        if not score and rest != b"swagger.json" and rest != b"docs" and not rest.startswith(b"docs/"):
            message = f"no route for {_text(path)}; use /endpoints/{name}/score, /swagger.json or /docs"
            return error_answer(404, message, request_id)
        table = self.routes.current()
        if table is not self._table:
            self._table = table
            self._drop_unused_pools()
        endpoint = table.endpoints.get(name)
        if endpoint is None:
            return error_answer(404, f"there is no endpoint named {name!r}", request_id)
        if (
            endpoint.auth is AuthMode.KEY
            and not key_matches(_bearer(authorization), endpoint.keys)
            and (score or (method != b"GET" and method != b"HEAD"))  # the docs and the document are open
        ):
            message = f"endpoint {name!r} needs a valid key: Authorization: Bearer <key>"
            return error_answer(401, message, request_id, _CHALLENGE)
        if deployment_header is not None:
            chosen = _text(deployment_header)
            deployment = endpoint.deployments.get(chosen)
            if deployment is None:
                return error_answer(404, f"endpoint {name!r} has no deployment named {chosen!r}", request_id)
        else:
            deployment = endpoint.choose()
            if deployment is None:
                return error_answer(
                    503, f"endpoint {name!r} sends no traffic to any deployment yet", request_id, _RETRY
                )
        target = deployment.next_target()
        if target is None:
            message = f"deployment {deployment.name!r} of endpoint {name!r} has no ready instance"
            return error_answer(503, message, request_id, _RETRY)
        lines[0] += target.prefix.encode() + b"/" + rest + (b"?" + query if query else b"") + b" HTTP/1.1\r\n"
        mirror = endpoint.mirror if deployment_header is None and endpoint.mirrors_now() else None
        pool = self._pool(target)
        document = None if score or rest != b"swagger.json" else endpoint
        head = b"".join(lines)
        return Forward(pool, head, name, deployment.name, request_id, trace, rest, mirror, deployment.served, document)

    def seal(self, forward: Forward, body: list[bytes], size: int) -> None:
        """The body (`size` bytes in pieces) is in: make the bytes to send, in one piece, and the copy."""
        tail = b"host: %s\r\ncontent-length: %d\r\n\r\n" % (forward.pool.host_bytes, size)
        forward.data = b"".join([forward.head, tail, *body])
        if forward.mirror is not None:
            self._mirror(forward, forward.mirror, forward.data[len(forward.data) - size :])

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()

    def _drop_unused_pools(self) -> None:
        """Close the connections to instances the new table no longer names (a replaced generation)."""
        used = {
            target
            for endpoint in self._table.endpoints.values()
            for deployment in endpoint.deployments.values()
            for target in deployment.targets
        }
        for target in [t for t in self._pools if t not in used]:
            self._pools.pop(target).close()

    def _pool(self, target: Target) -> UpstreamPool:
        pool = self._pools.get(target)
        if pool is None:
            pool = self._pools[target] = UpstreamPool(target.host, target.port, path=target.path)
        return pool

    def _mirror(self, forward: Forward, mirror: DeploymentRoute, body: bytes) -> None:
        target = mirror.next_target()
        full = len(self._mirrors) >= _MAX_MIRRORS_IN_FLIGHT or self._mirror_bytes + len(body) > _MAX_MIRROR_BYTES
        if target is None or full:
            return
        self._mirror_bytes += len(body)
        copy = self._send_copy(forward.endpoint, mirror, target, forward.head, body)  # not `forward`: its data
        task = asyncio.get_running_loop().create_task(copy)
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _send_copy(
        self, endpoint: str, mirror: DeploymentRoute, target: Target, head: bytes, body: bytes
    ) -> None:
        pool = self._pool(target)
        data = b"%shost: %s\r\ncontent-length: %d\r\n\r\n%s" % (head, pool.host_bytes, len(body), body)
        try:
            await pool.request(data, self.timeout)
        except (UpstreamError, UpstreamTimeout) as error:  # the copy's fate never reaches the caller
            logger.debug("mirror copy to %s/%s failed: %s", endpoint, mirror.name, error)
        finally:
            self._mirror_bytes -= len(body)


def _route_template(rest: bytes) -> str:
    """The route a span is named after: the endpoint and a docs page's path are left out, to keep names few."""
    return "/endpoints/{endpoint}/" + ("docs/{path}" if rest.startswith(b"docs/") else rest.decode("latin-1"))


def _bearer(authorization: bytes | None) -> str | None:
    """keys.bearer_token() for the raw header."""
    return bearer_token(None if authorization is None else authorization.decode("utf-8", "surrogateescape"))


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")
