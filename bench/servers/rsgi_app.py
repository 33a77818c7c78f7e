"""Bare RSGI app for granian: ``granian --interface rsgi --no-ws servers.rsgi_app:app``."""

from granian.rsgi import HTTPProtocol, Scope  # type: ignore[attr-defined]  # re-exported, not in __all__

from .common import JSON_HEADERS, TEXT_HEADERS, score


async def app(scope: Scope, protocol: HTTPProtocol) -> None:
    if scope.method == "POST" and scope.path == "/score":
        protocol.response_bytes(200, JSON_HEADERS, score(await protocol()))
    else:
        protocol.response_str(200, TEXT_HEADERS, "Healthy")
