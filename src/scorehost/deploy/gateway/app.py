"""The gateway as an RSGI app: `/endpoints/<name>/{score,swagger.json,docs}` forwarded to a deployment.

Per request: find the endpoint in the current routing table, check its key, pick a deployment (the
`azureml-model-deployment` header, else a weighted draw) and its next instance, forward with the path
rewritten, and pass the answer back as it came (status, headers, body). Answers of its own are JSON
`{"error": ...}`: 401 key, 404 endpoint or deployment, 405, 413 body, 502 unreachable, 503 no instance,
504 deadline. A copy of mirror_percent of the requests goes to the mirror, fire-and-forget.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from scorehost.deploy.gateway.routes import DeploymentRoute, EndpointRoute, RouteFile, Target
from scorehost.deploy.gateway.upstream import UpstreamError, UpstreamPool, UpstreamTimeout
from scorehost.deploy.keys import bearer_token, key_matches
from scorehost.deploy.spec import AuthMode
from scorehost.http.request_ids import new_request_id

__all__ = ["GatewayApp"]

logger = logging.getLogger("scorehost.gateway")

_PREFIX = "/endpoints/"
_JSON = "application/json"
_DEPLOYMENT_HEADER = "azureml-model-deployment"
# Not forwarded: hop-by-hop headers, what the gateway recomputes (host, content-length), and the caller's key.
_DROP_REQUEST = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_DROP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})
_MAX_MIRRORS_IN_FLIGHT = 64  # beyond this, copies are dropped: a slow mirror must not pile up memory


class GatewayApp:
    """One per gateway worker process; `__rsgi__` answers each request."""

    def __init__(self, routes: RouteFile, *, timeout: float = 60.0, max_body_size: int = 100 * 1024 * 1024) -> None:
        self.routes = routes
        self.timeout = timeout
        self.max_body_size = max_body_size
        self._pools: dict[Target, UpstreamPool] = {}
        self._mirrors: set[asyncio.Task[None]] = set()

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        return None

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        for pool in self._pools.values():
            pool.close()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        headers = scope.headers
        request_id = headers.get("x-request-id") or new_request_id()
        answer = await self._answer(scope, proto, headers, request_id)
        if answer is not None:
            status, message, extra = answer
            body = orjson.dumps({"error": message})
            proto.response_bytes(status, [("content-type", _JSON), ("x-request-id", request_id), *extra], body)

    async def _answer(self, scope: Any, proto: Any, headers: Any, request_id: str) -> _Own | None:
        """Forward the request and answer it; or the gateway's own answer (status, message, extra headers)."""
        path: str = scope.path
        if path == "/":  # liveness, as the scoring server answers it
            proto.response_bytes(200, [("content-type", "text/plain; charset=utf-8")], b"Healthy")
            return None
        if not path.startswith(_PREFIX):
            return 404, f"no route for {path}; scoring URIs are /endpoints/<name>/score", []
        name, _, rest = path[len(_PREFIX) :].partition("/")
        if rest != "score" and rest != "swagger.json" and rest != "docs" and not rest.startswith("docs/"):
            return 404, f"no route for {path}; use /endpoints/{name}/score, /swagger.json or /docs", []
        endpoint = self.routes.current().endpoints.get(name)
        if endpoint is None:
            return 404, f"there is no endpoint named {name!r}", []
        if endpoint.auth is AuthMode.KEY and not key_matches(bearer_token(headers.get("authorization")), endpoint.keys):
            return 401, f"endpoint {name!r} needs a valid key: Authorization: Bearer <key>", [_CHALLENGE]
        chosen = headers.get(_DEPLOYMENT_HEADER)
        if chosen is not None:
            deployment = endpoint.deployments.get(chosen)
            if deployment is None:
                return 404, f"endpoint {name!r} has no deployment named {chosen!r}", []
        else:
            deployment = endpoint.choose()
            if deployment is None:
                return 503, f"endpoint {name!r} sends no traffic to any deployment yet", [_RETRY]
        target = deployment.next_target()
        if target is None:
            return 503, f"deployment {deployment.name!r} of endpoint {name!r} has no ready instance", [_RETRY]
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_size:
            return 413, f"the body exceeds the gateway's limit of {self.max_body_size} bytes", []
        body = await self._read_body(proto)
        if body is None:
            return 413, f"the body exceeds the gateway's limit of {self.max_body_size} bytes", []
        query: str = scope.query_string
        head = _head(scope, headers, "/" + rest + ("?" + query if query else ""), request_id)
        if endpoint.mirror is not None and chosen is None and endpoint.mirrors_now():
            self._mirror(endpoint, head, body)
        pool = self._pool(target)
        try:
            status, upstream_headers, answer = await pool.request(_finish(head, pool, body), body, self.timeout)
        except UpstreamTimeout:
            logger.warning("endpoint %s, deployment %s (%s): no answer in time", name, deployment.name, target.url)
            return 504, f"deployment {deployment.name!r} did not answer within {self.timeout:g} s", []
        except UpstreamError as error:
            logger.warning("endpoint %s, deployment %s (%s): %s", name, deployment.name, target.url, error)
            return 502, f"deployment {deployment.name!r} cannot be reached: {error}", []
        out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in upstream_headers if k.lower() not in _DROP]
        proto.response_bytes(status, out, answer)
        return None

    async def _read_body(self, proto: Any) -> bytes | None:
        """The whole body, or None once it passes the limit (a chunked body has no length up front)."""
        limit = self.max_body_size
        body: bytes = await proto()
        return None if len(body) > limit else body

    def _pool(self, target: Target) -> UpstreamPool:
        pool = self._pools.get(target)
        if pool is None:
            pool = self._pools[target] = UpstreamPool(target.host, target.port)
        return pool

    def _mirror(self, endpoint: EndpointRoute, head: bytes, body: bytes) -> None:
        mirror = endpoint.mirror
        if mirror is None or len(self._mirrors) >= _MAX_MIRRORS_IN_FLIGHT:
            return
        target = mirror.next_target()
        if target is None:
            return
        task = asyncio.get_running_loop().create_task(self._send_copy(endpoint, mirror, target, head, body))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _send_copy(
        self, endpoint: EndpointRoute, mirror: DeploymentRoute, target: Target, head: bytes, body: bytes
    ) -> None:
        pool = self._pool(target)
        try:
            await pool.request(_finish(head, pool, body), body, self.timeout)
        except (UpstreamError, UpstreamTimeout) as error:  # the copy's fate never reaches the caller
            logger.debug("mirror copy to %s/%s failed: %s", endpoint.name, mirror.name, error)


_Own = tuple[int, str, list[tuple[str, str]]]
_CHALLENGE = ("www-authenticate", "Bearer")
_RETRY = ("retry-after", "1")


def _head(scope: Any, headers: Any, path: str, request_id: str) -> bytes:
    """The request line and forwarded headers, without `host` and the blank line that ends them."""
    lines = [f"{scope.method} {path} HTTP/1.1\r\n"]
    forwarded_for = None
    for key, value in headers.items():
        if key in _DROP_REQUEST:
            continue
        if key == "x-forwarded-for":
            forwarded_for = value
            continue
        lines.append(f"{key}: {value}\r\n")
    client = _client_ip(scope.client)
    chain = f"{forwarded_for}, {client}" if forwarded_for else client
    lines.append(f"x-forwarded-for: {chain}\r\n")
    if "x-request-id" not in headers:
        lines.append(f"x-request-id: {request_id}\r\n")
    return "".join(lines).encode("latin-1")


def _finish(head: bytes, pool: UpstreamPool, body: bytes) -> bytes:
    """`head` completed for one instance: its host header, the body's length, the blank line."""
    return b"%shost: %s\r\ncontent-length: %d\r\n\r\n" % (head, pool.host_bytes, len(body))


def _client_ip(client: str) -> str:
    host = client.rpartition(":")[0] if client.count(":") == 1 or client.startswith("[") else client
    return host.strip("[]")
