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
from scorehost.http.factory import run_gate_for, scoring_app_for
from scorehost.http.startup import load_and_init
from scorehost.ray.startup_error import ReplicaStartFailed
from scorehost.telemetry.logs import AccessLog

__all__ = ["ScoringReplica"]

logger = logging.getLogger("scorehost.ray")


class ScoringReplica:
    """Load the entry script and run `init()` (a replica takes traffic only once its constructor returned),
    then answer as `scorehost serve` does. `options` are `ServeSettings` fields; `model_dir` must exist on
    the node the replica runs on. `models`, a `scorehost.ray.models.manifest`, names registered models instead:
    they are copied to this node and verified before init()."""

    # Attribute names say scoring_: Serve's ingress class adds members of its own (`app`, ...) to this class.
    def __init__(self, options: Mapping[str, Any], models: Mapping[str, Any] | None = None) -> None:
        try:
            self._scoring_start(options, models)
        except Exception as error:  # Serve keeps only its text: made readable for the control plane (startup_error)
            raise ReplicaStartFailed.of(error) from None

    def _scoring_start(self, options: Mapping[str, Any], models: Mapping[str, Any] | None) -> None:
        if models:
            from scorehost.ray.models import materialize

            options = {**options, "model_dir": str(materialize(models))}
        settings = self.scoring_settings = ServeSettings(**options)
        if settings.model_dir is not None:
            os.environ["AZUREML_MODEL_DIR"] = settings.model_dir
        self.scoring_stuck: str | None = None
        gate = run_gate_for(settings, self._scoring_on_stuck)
        # Serve writes its own access line per request (method, route, status, time, request id) to the replica's
        # log: a second one from the host would double the logging cost and the log.
        access_log = AccessLog(settings.log_format, enabled=False)
        self.scoring_app: ScoringApp = scoring_app_for(settings, gate, access_log)
        self.scoring_app.attach(load_and_init(settings))  # a script that cannot load fails the replica's start

    def asgi_app(self) -> Any:
        """The app as ASGI (`AsgiFront`): each request answered on a pool thread, as on a worker's threads."""
        from scorehost.ray.asgi import AsgiFront

        # Enough threads that requests wait in the gate, under their deadline, rather than for a thread.
        settings = self.scoring_settings
        threads = settings.threads + settings.spare_threads + 16
        return AsgiFront(self.scoring_app, threads=threads, inline=settings.threads == 1)

    def check_health(self) -> None:
        """Raise when this replica should be replaced: a `run()` that never returned holds its gate."""
        if self.scoring_stuck is not None:
            raise RuntimeError(self.scoring_stuck)
        if not self.scoring_app.ready:
            raise RuntimeError("the entry script is not loaded")

    def __del__(self) -> None:
        """Serve calls this as the replica stops: the rows it collected and its spans are written before it goes."""
        app = getattr(self, "scoring_app", None)  # None when __init__ failed
        if app is not None:
            app.close()

    def _scoring_on_stuck(self, reason: str) -> None:
        logger.error("%s; this replica reports itself unhealthy, to be replaced", reason)
        self.scoring_stuck = reason
