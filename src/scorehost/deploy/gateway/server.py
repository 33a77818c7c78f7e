"""Run the gateway: granian's RSGI server (its own process manager: the gateway holds no state to keep),
one asyncio loop per worker process, each reading the routing table from the workspace.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from scorehost.deploy.gateway.app import GatewayApp
from scorehost.deploy.gateway.routes import RouteFile, routes_path

__all__ = ["make_app", "serve_gateway"]

# granian imports the app in each worker process by name; its settings travel in this variable.
_SETTINGS_VARIABLE = "SCOREHOST_GATEWAY_SETTINGS"


def serve_gateway(
    home: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    *,
    timeout: float = 60.0,
    max_body_size: int = 100 * 1024 * 1024,
) -> None:
    """Serve the endpoints of workspace `home` on host:port until SIGINT/SIGTERM."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = {"routes": str(routes_path(home)), "timeout": timeout, "max_body_size": max_body_size}
    os.environ[_SETTINGS_VARIABLE] = orjson.dumps(settings).decode()
    server = Granian(
        "scorehost.deploy.gateway.server:make_app",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        websockets=False,
        factory=True,
        log_access=False,  # an access line would hold request headers; keys never reach a log
        respawn_failed_workers=True,
    )
    server.serve()


def make_app() -> GatewayApp:
    """The app of one worker process, from the settings serve_gateway() left in the environment."""
    settings = orjson.loads(os.environ[_SETTINGS_VARIABLE])
    return GatewayApp(
        RouteFile(Path(settings["routes"])), timeout=settings["timeout"], max_body_size=settings["max_body_size"]
    )
