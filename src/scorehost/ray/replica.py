"""The scoring host inside one Ray Serve replica: the same entry-script host and the same HTTP app as a
`scorehost serve` worker, offered to Serve as ASGI. Nothing here imports Ray, so it is tested without it.

The contract lives once, in `scorehost.host` and `scorehost.http.app`; a replica differs from a worker
only in who owns the process. A worker exits when a `run()` never returns and its supervisor starts
another; a replica reports itself unhealthy instead, and Serve replaces it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from scorehost.config import ServeSettings
from scorehost.http.app import ScoringApp
from scorehost.http.startup import load_and_init
from scorehost.http.worker import run_gate_for, scoring_app_for
from scorehost.logs import AccessLog

__all__ = ["ScoringReplica"]

logger = logging.getLogger("scorehost.ray")


class ScoringReplica:
    """Load the entry script and run `init()` (a replica takes traffic only once its constructor returned),
    then answer as `scorehost serve` does. `options` are `ServeSettings` fields; `model_dir` must exist on
    the node the replica runs on."""

    # Attribute names say scoring_: Serve's ingress class adds members of its own (`app`, ...) to this class.
    def __init__(self, options: Mapping[str, Any]) -> None:
        settings = self.scoring_settings = ServeSettings(**options)
        if settings.model_dir is not None:
            os.environ["AZUREML_MODEL_DIR"] = settings.model_dir
        self.scoring_stuck: str | None = None
        gate = run_gate_for(settings, self._scoring_on_stuck)
        self.scoring_app: ScoringApp = scoring_app_for(settings, gate, AccessLog(settings.log_format))
        self.scoring_app.attach(load_and_init(settings))  # a script that cannot load fails the replica's start

    def asgi_app(self) -> Any:
        """The app as ASGI: each request runs on a thread of its own, as on a worker's granian threads."""
        from a2wsgi import WSGIMiddleware

        threads = self.scoring_settings.threads + self.scoring_settings.spare_threads + 1
        wsgi_app: Any = self.scoring_app
        return _without_request_id(WSGIMiddleware(wsgi_app, workers=threads))

    def check_health(self) -> None:
        """Raise when this replica should be replaced: a `run()` that never returned holds its gate."""
        if self.scoring_stuck is not None:
            raise RuntimeError(self.scoring_stuck)
        if not self.scoring_app.ready:
            raise RuntimeError("the entry script is not loaded")

    def _scoring_on_stuck(self, reason: str) -> None:
        logger.error("%s; this replica reports itself unhealthy, to be replaced", reason)
        self.scoring_stuck = reason


def _without_request_id(app: Any) -> Any:
    """Serve puts the request's `x-request-id` on every answer itself (the caller's, or one it made and passed
    in); the app's own copy would repeat it."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_once(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != b"x-request-id"]}
            await send(message)

        await app(scope, receive, send_once)

    return asgi
