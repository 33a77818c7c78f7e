"""The controller: makes what runs match what is declared, and tells the gateway where to send traffic.

Rolling update, with no failed request: the new generation starts beside the old one; only once it
is ready do the routes point at it; the old one is stopped after the gateway has had time to reload
the routes (`RELOAD_GRACE`), and stopping drains its in-flight requests. A generation that cannot
start is stopped and reported; the old one keeps serving. An update declared while an older one is
still starting supersedes it: the older one is stopped at once.

Declared is not serving. The state keeps both: the declared generation (the latest update) and the
serving one (the last that became ready), which only ever moves forward. After a control-plane
restart, `recover` brings back the serving generation first (adopting it when it still runs and
answers, else starting it from its stored spec), then retries a newer declared one in the
background, as a rolling update would: a broken update never takes down what served before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorehost.deploy.backends.base import Backend, Handle, Resizable
from scorehost.deploy.backends.base import DeploymentRecord as RuntimeRecord
from scorehost.deploy.collected import collected_folder
from scorehost.deploy.controlplane.fitting import Fitting, shared_targets
from scorehost.deploy.controlplane.following import ModelFollower
from scorehost.deploy.gateway.routes import routes_path, write_routes
from scorehost.deploy.spec import DeploymentSpec
from scorehost.deploy.state import DeploymentRecord, DeployState
from scorehost.errors import DeployError, UnknownResource

__all__ = ["Controller"]

logger = logging.getLogger("scorehost.controlplane")

RELOAD_GRACE = 0.5  # seconds: > the gateway's routes re-check interval, so no request goes to a stopped target


@dataclass
class _Live:
    """What runs for one declared deployment: the generation serving, and those being started."""

    declared: int  # the latest declared generation; older ones still starting are superseded
    serving: Handle | None = None
    starting: dict[int, Handle] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)  # generations whose rollout is under way
    restoring: int | None = None  # the generation that served before a restart, being brought back
    error: str | None = None  # why the declared generation (or the one restored) cannot start
    failed: int | None = None
    failed_handle: Handle | None = None  # the last generation that could not start: its log stays readable
    routing: str | None = None  # "starting"/"updating" while the gateway re-reads the routes to a promoted one
    # An update rolling within the room (`fitting`): the new generation takes traffic beside the serving one,
    # in proportion to their instances (serving, beside); one such update at a time.
    beside: Handle | None = None
    shares: tuple[int, int] = (1, 1)
    rolling: threading.Lock = field(default_factory=threading.Lock)

    @property
    def state(self) -> str:
        """ready: the declared generation serves (or failed while an older one serves, `error` says why);
        updating: an older one serves while a newer starts; starting, failed or stopped: none serves."""
        if self.routing is not None:  # "ready" means the gateway sends it traffic: not before it re-read the routes
            return self.routing
        busy = bool(self.pending or self.starting)
        if self.serving is not None:
            return "updating" if busy and self.serving.generation < self.declared else "ready"
        if busy:
            return "starting"
        return "failed" if self.error else "stopped"

    def handles(self) -> list[Handle]:
        return [*([self.serving] if self.serving is not None else []), *self.starting.values()]


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
        self._follower = ModelFollower(state, home, self.deploy)
        self._fitting = Fitting(self)

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
        self._fitting.check(spec)  # an update the room cannot hold beside the serving generation, even in steps
        return spec

    def deploy(self, record: DeploymentRecord) -> None:
        """Start `record`'s generation in the background (a rolling update when one already serves); an older
        generation still starting is superseded and stopped."""
        key = (record.spec.endpoint, record.spec.name)
        with self._lock:
            live = self._live.setdefault(key, _Live(declared=record.generation))
            live.declared = max(live.declared, record.generation)
            superseded = [h for g, h in live.starting.items() if g < record.generation and g != live.restoring]
            for handle in superseded:
                del live.starting[handle.generation]
            live.pending.add(record.generation)
            live.error = live.failed = None
        for handle in superseded:
            logger.info(
                "%s/%s generation %d superseded by generation %d: stopping it",
                *key,
                handle.generation,
                record.generation,
            )
            self._background(self._stop, handle, self._withdraw(live, handle))
        self._background(self._roll, record.spec, record.generation)

    def retire(self, record: DeploymentRecord) -> None:
        """Stop everything of a deleted deployment (in the background, draining)."""
        with self._lock:
            live = self._live.pop((record.spec.endpoint, record.spec.name), None)
        if live is not None:
            for handle in live.handles():
                self._background(self._stop, handle, RELOAD_GRACE)

    def status(self, record: DeploymentRecord) -> dict[str, Any]:
        """The deployment's state and error, which generation is declared and which serves, and the instances of
        the serving generation (or of the starting one while none serves); `starting_instances`: those of the
        generation being started (what an update waits for), empty when none is."""
        with self._lock:
            live = self._live.get((record.spec.endpoint, record.spec.name))
            if live is None:
                return {
                    "state": "stopped",
                    "error": None,
                    "instances": [],
                    "declared_generation": record.generation,
                    "starting_instances": [],
                }
            starting_handle = live.starting[max(live.starting)] if live.starting else None
            shown = live.serving or starting_handle
            summary = {
                "state": live.state,
                "error": live.error,
                "declared_generation": live.declared,
                "serving_generation": live.serving.generation if live.serving is not None else None,
                "starting_generation": starting_handle.generation if starting_handle is not None else None,
            }
        details = self.backend.status(shown).to_json() if shown is not None else {}
        starting = details if starting_handle is shown else {}
        if starting_handle is not None and starting_handle is not shown:
            starting = self.backend.status(starting_handle).to_json()
        summary["starting_instances"] = starting.get("instances", [])
        return {**details, **summary}  # ours win: "ready" means routed to

    def processes(self) -> list[dict[str, Any]]:
        """Every generation this control plane runs, with its instances' state, restarts and last cause."""
        with self._lock:
            handles = [(h, h is live.serving) for live in self._live.values() for h in live.handles()]
        return [{**self.backend.status(h).to_json(), "serving": serving} for h, serving in handles]

    def logs(
        self, record: DeploymentRecord, lines: int, follow: bool = False, generation: int | None = None
    ) -> Iterable[str]:
        """The log of the generation being started, else of the serving one; or of `generation` (serving, starting,
        or the last that failed to start): UnknownResource when this control plane runs no such generation."""
        key = (record.spec.endpoint, record.spec.name)
        with self._lock:
            live = self._live.get(key)
            if generation is None:
                handle = live and (live.starting[max(live.starting)] if live.starting else live.serving)
            else:
                known = [*live.handles(), *([live.failed_handle] if live.failed_handle else [])] if live else []
                handle = next((h for h in known if h.generation == generation), None)
                if handle is None:
                    raise UnknownResource(
                        f"{key[0]}/{key[1]} generation {generation} has no log here: it is not running, and not the "
                        f"last generation that failed to start (`scorehost deployments show {key[0]} {key[1]}`)"
                    )
        return self.backend.logs(handle, lines=lines, follow=follow) if handle else []

    def collected(self, endpoint: str, deployment: str) -> Path:
        return collected_folder(self.home, endpoint, deployment)

    def routes_changed(self) -> None:
        """Write the gateway's routing table from the declared state and the ready targets."""
        with self._routes_lock:
            document = self._routes()
            if document != self._last_routes:
                write_routes(routes_path(self.home), document)
                self._last_routes = document

    # -- recovery and watching ---------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: adopt what still runs and is still wanted (the serving and the declared generation),
        stop the rest; bring back each deployment's serving generation, then retry a newer declared one."""
        declared = {
            (r.spec.endpoint, r.spec.name): r for e in self.state.endpoints() for r in self.state.deployments(e.name)
        }
        found: dict[tuple[str, str], dict[int, Handle]] = {}
        for endpoint, name, generation, data in self.state.runtimes():
            record = declared.get((endpoint, name))
            handle = self.backend.adopt(RuntimeRecord.from_json(data))
            wanted = record is not None and generation in (record.generation, record.serving_generation)
            if handle is not None and wanted:
                found.setdefault((endpoint, name), {})[generation] = handle
                continue
            if handle is not None:  # an older generation, or of a deployment deleted meanwhile
                self.backend.stop(handle, self.drain_seconds)
            self.state.forget_runtime(endpoint, name, generation)
        for key, record in declared.items():
            self._recover(key, record, found.get(key, {}))
        self.routes_changed()

    def _recover(self, key: tuple[str, str], record: DeploymentRecord, running: dict[int, Handle]) -> None:
        live = _Live(declared=record.generation)
        with self._lock:
            self._live[key] = live
        if running:
            newest = max(running)
            for generation, handle in running.items():
                if generation != newest:
                    self._background(self._stop, handle, 0.0)
            live.serving = running[newest]
            spec = record.spec if newest == record.generation else record.serving_spec
            if spec is not None and isinstance(self.backend, Resizable):
                self._fitting.restore(live.serving, spec)  # an update within the room was cut short, perhaps
            if spec is not None and newest != record.serving_generation:
                self.state.mark_serving(spec, newest)  # it became ready just before the last control plane died
            logger.info("%s/%s generation %d found running again", *key, newest)
            if newest < record.generation:
                logger.info("%s/%s generation %d is declared: retrying it", *key, record.generation)
                self.deploy(record)
            return
        if record.serving_spec is not None and record.serving_generation is not None:
            serving = record.serving_generation
            newer = f", then generation {record.generation}" if record.generation > serving else ""
            logger.info("%s/%s generation %d served before and is not running: starting it%s", *key, serving, newer)
            with self._lock:
                live.restoring = serving
                live.pending.add(serving)
            self._background(self._restore, record.serving_spec, serving, record)
            return
        logger.info("%s/%s generation %d was not running: starting it", *key, record.generation)
        self.deploy(record)

    def _restore(self, spec: DeploymentSpec, generation: int, record: DeploymentRecord) -> None:
        """Bring back the generation that served before the restart; then roll out the declared one if newer."""
        self._roll(spec, generation)
        key = (spec.endpoint, spec.name)
        with self._lock:
            live = self._live.get(key)
            again = live is not None and live.declared == record.generation and record.generation > generation
        if again:
            logger.info("%s/%s generation %d is declared: retrying it", *key, record.generation)
            self.deploy(record)

    def watch(self, interval: float = 1.0) -> None:
        """Keep the routes current as instances restart (in a thread, until `close`)."""

        def loop() -> None:
            while not self._stopping.wait(interval):
                try:
                    self.routes_changed()
                except Exception:  # one failed pass must not end the watching
                    logger.exception("could not refresh the gateway's routes")
                try:
                    self._follower.check()
                except Exception:
                    logger.exception("could not check the model labels that deployments follow")

        self._background(loop)

    def close(self, *, stop_deployments: bool) -> None:
        """Stop watching; with `stop_deployments`, stop every generation (else they keep running for adoption)."""
        self._stopping.set()
        self._follower.close()
        if stop_deployments:
            with self._lock:
                handles = [h for live in self._live.values() for h in live.handles()]
                self._live.clear()
            for handle in handles:
                self._stop(handle, 0.0)
        for thread in self._threads:
            thread.join(timeout=self.drain_seconds + 5)
        with self._lock:
            self._live.clear()  # what still runs is the next control plane's to adopt
        self.backend.close()

    # -- internals ---------------------------------------------------------------------------------

    def _background(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="scorehost-controller")
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _wanted(self, live: _Live | None, generation: int) -> bool:
        """Whether `generation` may still take over: declared (or being restored), and newer than what serves."""
        if live is None or (live.serving is not None and live.serving.generation >= generation):
            return False
        return generation == live.declared or generation == live.restoring

    def _roll(self, spec: DeploymentSpec, generation: int) -> None:
        key = (spec.endpoint, spec.name)
        handle: Handle | None = None
        try:
            try:
                if self._fitting.roll(spec, generation):  # it does not fit beside the serving one: rolled in steps
                    return
                handle = self.backend.start(spec, generation)
                self.state.save_runtime(*key, generation, handle.record().to_json())
                with self._lock:
                    live = self._live.get(key)
                    wanted = self._wanted(live, generation)
                    if live is not None and wanted:
                        live.starting[generation] = handle
                if not wanted:  # deleted, or superseded, while it was being started
                    self._stop(handle, 0.0)
                    return
                self.backend.wait_ready(handle, self.ready_timeout)
            except Exception as error:  # whatever it is, the generation fails and says why: nobody waits forever
                self._failed(spec, generation, handle, error)
                return
            self._promote(spec, handle)
        finally:
            self._done(key, generation)

    def _failed(self, spec: DeploymentSpec, generation: int, handle: Handle | None, error: Exception) -> None:
        key = (spec.endpoint, spec.name)
        with self._lock:
            live = self._live.get(key)
            wanted = self._wanted(live, generation)
            if live is not None:
                live.starting.pop(generation, None)
        if handle is not None:
            try:
                self._stop(handle, 0.0)
            except Exception:
                logger.exception("%s/%s generation %d could not be stopped", *key, generation)
        if not wanted or live is None:
            logger.info("%s/%s generation %d stopped before it became ready (superseded or deleted)", *key, generation)
            return
        if isinstance(error, DeployError):
            logger.error("%s/%s generation %d cannot start: %s", *key, generation, error)
            reason = str(error)
        else:  # a bug (ours, or the backend library's): the traceback goes to the log
            logger.exception("%s/%s generation %d cannot start", *key, generation)
            reason = f"unexpected {type(error).__name__}: {error} (the control plane's log has the traceback)"
        with self._lock:
            restoring = generation == live.restoring
            if restoring:
                live.restoring = None
                live.error = f"generation {generation}, which served before the restart, cannot start again: {reason}"
            else:
                live.error, live.failed = reason, generation
            live.failed_handle = handle
        if not restoring:
            self.state.mark_failed(*key, generation, reason)

    def _promote(self, spec: DeploymentSpec, handle: Handle, grow: Callable[[], None] | None = None) -> None:
        """Route traffic to the ready `handle` and stop the generation it replaces (or `handle`, come too late);
        `grow()`, once the old one is stopped, before the update counts as done (one rolled within the room grows
        the new generation to its full size then)."""
        key, generation = (spec.endpoint, spec.name), handle.generation
        old: Handle | None = None
        with self._lock:
            live = self._live.get(key)
            if live is None or live.starting.pop(generation, None) is not handle:
                return  # stopped meanwhile: superseded (deploy) or deleted (retire)
            late = not self._wanted(live, generation)
            if not late:
                old, live.serving, live.beside = live.serving, handle, None
                live.routing = "updating" if old is not None else "starting"
                if live.restoring == generation:
                    live.restoring = None
                if live.failed is not None and live.failed <= generation:
                    live.error = live.failed = None
        if late:  # a newer generation got there first
            self._stop(handle, self._withdraw(live, handle))
            return
        self.state.mark_serving(spec, generation)
        self.routes_changed()
        # "ready" means the gateway sends it traffic: it re-reads the routes within RELOAD_GRACE.
        time.sleep(RELOAD_GRACE)
        if grow is not None:
            if old is not None:
                self._stop(old, 0.0)
                old = None
            grow()
        with self._lock:
            if live.serving is handle:
                live.routing = None
        self._done(key, generation)
        logger.info("%s/%s generation %d ready and serving", *key, generation)
        if old is not None:
            self._stop(old, 0.0)

    def _withdraw(self, live: _Live, handle: Handle) -> float:
        """Take `handle` out of the routes if it takes traffic beside the serving generation; the seconds to wait
        before stopping it."""
        with self._lock:
            if live.beside is not handle:
                return 0.0
            live.beside = None
        self.routes_changed()
        return RELOAD_GRACE

    def _done(self, key: tuple[str, str], generation: int) -> None:
        with self._lock:
            live = self._live.get(key)
            if live is not None:
                live.pending.discard(generation)

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
                    beside, shares = (live.beside, live.shares) if live else (None, (1, 1))
                targets = self.backend.targets(serving) if serving is not None else []
                if beside is not None:  # an update rolling within the room: both take traffic
                    targets = shared_targets(targets, self.backend.targets(beside), shares)
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
