"""The Ray Serve application: one deployment whose replicas are `ScoringReplica`s mounted as ASGI ingress.

`app_builder` is the `import_path` target of a Serve config file (`scorehost ray config` writes one), and
`application()` builds the same application in Python for the Ray backend. Ray is imported only here, and
only when called: it is an extra (`pip install 'scorehost[ray]'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scorehost.errors import ScorehostError
from scorehost.ray.autoscaling import OngoingRequests
from scorehost.ray.replica import ScoringReplica

__all__ = ["RayNotInstalled", "app_builder", "application"]

DEPLOYMENT_NAME = "ScoreHost"


class RayNotInstalled(ScorehostError):
    """Ray Serve is not installed in this environment."""


def _serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise RayNotInstalled(
            "Ray Serve is not installed: pip install 'scorehost[ray]' (on every node, in the same environment)"
        ) from None
    return serve


def application(
    options: Mapping[str, Any],
    deployment: Mapping[str, Any] | None = None,
    models: Mapping[str, Any] | None = None,
    version: str | None = None,
) -> Any:
    """A bound Serve application for the entry script `options` describe (ServeSettings fields), with Serve
    deployment options (`num_replicas`, `autoscaling_config`, `max_ongoing_requests`, ...), serving the
    registered models `models` describes (`scorehost.ray.models.manifest`), if any. With a `version`, running
    it again under the same name with another `num_replicas` (or autoscaling bounds) changes only the number of
    replicas: Serve restarts every replica when it is deployed again without one."""
    serve = _serve()

    @serve.ingress()  # no app given: each replica builds its own, after __init__ has run init()
    class ScoreHost(ScoringReplica):
        def __serve_build_asgi_app__(self) -> Any:
            self.scoring_ongoing = OngoingRequests(self.asgi_app())
            return self.scoring_ongoing

        async def record_autoscaling_stats(self) -> dict[str, float]:
            """What Serve's autoscaler counts: requests in progress, as a mean over time (ray/autoscaling.py)."""
            ongoing: OngoingRequests | None = getattr(self, "scoring_ongoing", None)
            return {} if ongoing is None else ongoing.stats()

    ScoreHost.__name__ = ScoreHost.__qualname__ = DEPLOYMENT_NAME
    made = serve.deployment(ScoreHost, name=DEPLOYMENT_NAME, **dict(deployment or {}))
    if version is not None:  # Serve's own option, refused by its public API since it manages versions itself
        made = made.options(version=version, _internal=True)
    return made.bind(dict(options), models)


def app_builder(args: Mapping[str, Any]) -> Any:
    """`import_path: scorehost.ray.serve_app:app_builder`: `args` holds the ServeSettings fields (entry_script,
    model_dir, run_input, timeout, ...); deployment options come from the config file's `deployments`."""
    return application(args)
