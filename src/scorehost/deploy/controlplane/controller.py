"""The controller: makes what runs match what is declared, and tells the gateway where to send traffic.

Rolling update, with no failed request: the new generation starts beside the old one; only once it
is ready do the routes point at it; the old one is stopped after the gateway has had time to reload
the routes (`RELOAD_GRACE`), and stopping drains its in-flight requests. A generation that cannot
start is stopped and reported; the old one keeps serving.

After a control-plane restart, `recover` adopts the generations still running (the backend checks
they answer) and starts the declared ones that are not, so nothing declared is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.deploy.backends.base import Backend, Handle
from scorehost.deploy.backends.base import DeploymentRecord as RuntimeRecord
from scorehost.deploy.gateway.routes import routes_path, write_routes
from scorehost.deploy.spec import DeploymentSpec
from scorehost.deploy.state import DeploymentRecord, DeployState
from scorehost.errors import DeployError

__all__ = ["Controller"]

logger = logging.getLogger("scorehost.controlplane")

RELOAD_GRACE = 0.5  # seconds: > the gateway's routes re-check interval, so no request goes to a stopped target


@dataclass
class _Live:
    """What runs for one declared deployment: the generation serving, and one being started."""

    serving: Handle | None = None
    starting: Handle | None = None
    state: str = "starting"
    error: str | None = None


class Controller:
    """Implements the API's `Deployer` over one backend; thread-safe."""

    def __init__(
        self,
        state: DeployState,
        backend: Backend,
        home: Path,
        *,
        ready_timeout: float = 600.0,
        drain_seconds: float = 30.0,
    ) -> None:
        self.state = state
        self.backend = backend
        self.home = home
        self.ready_timeout = ready_timeout
        self.drain_seconds = drain_seconds
        self._live: dict[tuple[str, str], _Live] = {}
        self._lock = threading.RLock()
        self._routes_lock = threading.Lock()
        self._last_routes: dict[str, Any] | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the API's Deployer ------------------------------------------------------------------------

    def prepare(self, spec: DeploymentSpec) -> DeploymentSpec:
        """The spec with every model reference pinned to a version number (an alias moved later, or a new
        latest, must not change what a restart serves); unknown models, and specs the backend cannot run (an
        unreachable Ray cluster, say), are refused here, before anything is stored."""
        if spec.models:
            from scorehost.registry import Registry

            with Registry(self.home) as registry:
                pinned = tuple("{}:{}".format(*registry.resolve(ref)) for ref in spec.models)
            data = spec.to_json()
            data["models"] = list(pinned)
            spec = DeploymentSpec.from_json(data)
        self.backend.check(spec)
        return spec

    def deploy(self, record: DeploymentRecord) -> None:
        """Start `record`'s generation in the background (a rolling update when one already serves)."""
        key = (record.spec.endpoint, record.spec.name)
        with self._lock:
            live = self._live.setdefault(key, _Live())
            live.state = "updating" if live.serving is not None else "starting"
            live.error = None
        self._background(self._roll, record)

    def retire(self, record: DeploymentRecord) -> None:
        """Stop everything of a deleted deployment (in the background, draining)."""
        with self._lock:
            live = self._live.pop((record.spec.endpoint, record.spec.name), None)
        if live is not None:
            for handle in (live.serving, live.starting):
                if handle is not None:
                    self._background(self._stop, handle, RELOAD_GRACE)

    def status(self, record: DeploymentRecord) -> dict[str, Any]:
        """The deployment's state, error, and each instance's state."""
        with self._lock:
            live = self._live.get((record.spec.endpoint, record.spec.name))
            if live is None:
                return {"state": "stopped", "error": None, "instances": []}
            handle = live.serving or live.starting
            state, error = live.state, live.error
        details = self.backend.status(handle).to_json() if handle is not None else {}
        return {**details, "state": state, "error": error}  # ours win: "ready" means routed to

    def logs(self, record: DeploymentRecord, lines: int, follow: bool = False) -> Iterable[str]:
        with self._lock:
            live = self._live.get((record.spec.endpoint, record.spec.name))
            handle = live and (live.starting or live.serving)
        return self.backend.logs(handle, lines=lines, follow=follow) if handle else []

    def routes_changed(self) -> None:
        """Write the gateway's routing table from the declared state and the ready targets."""
        with self._routes_lock:
            document = self._routes()
            if document != self._last_routes:
                write_routes(routes_path(self.home), document)
                self._last_routes = document

    # -- recovery and watching ---------------------------------------------------------------------

    def recover(self) -> None:
        """Adopt what still runs from before a restart; start what is declared but not running."""
        declared = {
            (r.spec.endpoint, r.spec.name): r for e in self.state.endpoints() for r in self.state.deployments(e.name)
        }
        for endpoint, name, generation, data in self.state.runtimes():
            record = declared.get((endpoint, name))
            handle = self.backend.adopt(RuntimeRecord.from_json(data))
            if handle is not None and record is not None and generation == record.generation:
                with self._lock:
                    self._live[(endpoint, name)] = _Live(serving=handle, state="ready")
                logger.info("%s/%s generation %d found running again", endpoint, name, generation)
                continue
            if handle is not None:  # an older generation, or of a deployment deleted meanwhile
                self.backend.stop(handle, self.drain_seconds)
            self.state.forget_runtime(endpoint, name, generation)
        for key, record in declared.items():
            if key not in self._live:
                logger.info("%s/%s generation %d was not running: starting it", *key, record.generation)
                self.deploy(record)
        self.routes_changed()

    def watch(self, interval: float = 1.0) -> None:
        """Keep the routes current as instances restart (in a thread, until `close`)."""

        def loop() -> None:
            while not self._stopping.wait(interval):
                try:
                    self.routes_changed()
                except Exception:  # one failed pass must not end the watching
                    logger.exception("could not refresh the gateway's routes")

        self._background(loop)

    def close(self, *, stop_deployments: bool) -> None:
        """Stop watching; with `stop_deployments`, stop every generation (else they keep running for adoption)."""
        self._stopping.set()
        if stop_deployments:
            with self._lock:
                handles = [h for live in self._live.values() for h in (live.serving, live.starting) if h]
                self._live.clear()
            for handle in handles:
                self._stop(handle, 0.0)
        for thread in self._threads:
            thread.join(timeout=self.drain_seconds + 5)
        self.backend.close()

    # -- internals ---------------------------------------------------------------------------------

    def _background(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="scorehost-controller")
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _roll(self, record: DeploymentRecord) -> None:
        key = (record.spec.endpoint, record.spec.name)
        handle: Handle | None = None
        try:
            handle = self.backend.start(record.spec, record.generation)
            with self._lock:
                self._live.setdefault(key, _Live()).starting = handle
            self.state.save_runtime(*key, record.generation, handle.record().to_json())
            self.backend.wait_ready(handle, self.ready_timeout)
        except Exception as error:  # whatever it is, the generation fails and says why: nobody waits forever
            if isinstance(error, DeployError):
                logger.error("%s/%s generation %d cannot start: %s", *key, record.generation, error)
                reason = str(error)
            else:  # a bug (ours, or the backend library's): the traceback goes to the log
                logger.exception("%s/%s generation %d cannot start", *key, record.generation)
                reason = f"unexpected {type(error).__name__}: {error} (the control plane's log has the traceback)"
            with self._lock:
                failed = self._live.setdefault(key, _Live())
                failed.starting = None
                failed.error = reason
                failed.state = "ready" if failed.serving is not None else "failed"
            if handle is not None:
                try:
                    self._stop(handle, 0.0)
                except Exception:
                    logger.exception("%s/%s generation %d could not be stopped", *key, record.generation)
            return
        with self._lock:
            live = self._live.get(key)
            stale = live is None or (live.serving is not None and live.serving.generation > handle.generation)
            if live is None or stale:  # deleted while it started, or a newer generation got there first
                self._background(self._stop, handle, 0.0)
                return
            old, live.serving, live.starting = live.serving, handle, None
        self.routes_changed()
        # "ready" means the gateway sends it traffic: it re-reads the routes within RELOAD_GRACE.
        time.sleep(RELOAD_GRACE)
        with self._lock:
            if self._live.get(key) is live and live.serving is handle:
                live.state = "ready"
        logger.info("%s/%s generation %d ready", *key, record.generation)
        if old is not None:
            self._stop(old, 0.0)

    def _stop(self, handle: Handle, grace: float) -> None:
        if grace:
            time.sleep(grace)  # the gateway re-reads its routes before the targets disappear
        try:
            self.backend.stop(handle, self.drain_seconds)
        finally:
            self.state.forget_runtime(handle.endpoint, handle.deployment, handle.generation)

    def _routes(self) -> dict[str, Any]:
        endpoints: dict[str, Any] = {}
        for endpoint in self.state.endpoints():
            deployments: dict[str, Any] = {}
            for record in self.state.deployments(endpoint.name):
                with self._lock:
                    live = self._live.get((endpoint.name, record.spec.name))
                    serving = live.serving if live else None
                targets = self.backend.targets(serving) if serving is not None else []
                weight = endpoint.traffic.get(record.spec.name, 0)
                deployments[record.spec.name] = {"weight": weight, "targets": targets}
            endpoints[endpoint.name] = {
                "auth": str(endpoint.auth),
                "keys": [endpoint.primary_key, endpoint.secondary_key],
                "deployments": deployments,
                "mirror": endpoint.mirror,
                "mirror_percent": endpoint.mirror_percent,
            }
        return {"version": 1, "endpoints": endpoints}
