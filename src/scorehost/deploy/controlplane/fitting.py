"""Rolling updates within the room there is, for backends whose generations share a bounded room and can change
size in place (`Resizable`: the Ray backend, whose cluster the serving generation may fill).

When the new generation does not fit beside the serving one, the backend plans steps (`RollPlan`): the old
generation shrinks a few instances at a time and the new one grows into the room they leave. While both run,
the gateway sends traffic to both, in proportion to their instances; once the plan says so, the new one takes
all traffic, the old one stops, and the new one grows to its full size. If the new generation cannot start (or
is superseded, or deleted) it is stopped, and the old one gets back the instances it had. An update that could
never fit is refused before anything is stored (`check`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from scorehost.deploy.backends.base import Handle, Resizable, RollPlan
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeploymentFailed, UnknownResource

if TYPE_CHECKING:
    from scorehost.deploy.controlplane.controller import Controller, _Live

__all__ = ["Fitting", "shared_targets"]

logger = logging.getLogger("scorehost.controlplane")


def shared_targets(old: list[str], new: list[str], shares: tuple[int, int]) -> list[str]:
    """The targets of two generations serving together, each repeated by its share: the gateway takes targets in
    turn, so each generation gets traffic in proportion to its instances."""
    if not old or not new:
        return old or new
    common = math.gcd(*shares) or 1
    return [*old * (shares[0] // common), *new * (shares[1] // common)]


def _reload_grace() -> float:
    """How long the gateway may take to re-read the routes."""
    from scorehost.deploy.controlplane.controller import RELOAD_GRACE

    return RELOAD_GRACE


class Fitting:
    """The controller's updates within the room (one at a time per deployment: `_Live.rolling`)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def check(self, spec: DeploymentSpec) -> None:
        """Refuse (InvalidSpec naming the fix) an update that could never replace the serving generation without a
        gap in serving; nothing is stored or changed."""
        found = self._serving(spec)
        if found is not None:
            backend, _, old, old_spec = found
            backend.plan_update(spec, old, old_spec)

    def restore(self, handle: Handle, spec: DeploymentSpec) -> None:
        """Give a generation found running after a restart the size its spec says, in case the last control plane
        stopped while an update was shrinking or growing it (the backend changes nothing if it has it)."""
        backend = self.controller.backend
        try:
            if isinstance(backend, Resizable):
                backend.resize(handle, spec, None)
        except Exception:
            logger.exception("%s/%s generation %d: cannot check its size", spec.endpoint, spec.name, handle.generation)

    def roll(self, spec: DeploymentSpec, generation: int) -> bool:
        """Roll `generation` out within the room when it does not fit beside the serving one: True when done here
        (serving, or failed and reported), False when the usual rolling update applies."""
        found = self._serving(spec)
        if found is None:
            return False
        backend, live, old, old_spec = found
        controller = self.controller
        with live.rolling:  # an update still rolling (or giving the old one its size back) finishes first
            with controller._lock:
                if not controller._wanted(live, generation):
                    return True  # superseded or deleted while it waited: nothing to do
                if live.serving is not old:
                    return False
            try:
                plan = backend.plan_update(spec, old, old_spec)
            except Exception as error:  # the room changed since the update was accepted
                controller._failed(spec, generation, None, error)
                return True
            if plan is None:
                logger.debug("%s/%s generation %d fits beside the serving one", spec.endpoint, spec.name, generation)
                return False
            logger.info(
                "%s/%s generation %d does not fit beside generation %d: rolling within the room, %s",
                spec.endpoint,
                spec.name,
                generation,
                old.generation,
                " -> ".join(f"{o}+{n}" for o, n in plan.steps),
            )
            _Roll(controller, backend, live, spec, generation, old, old_spec, plan).run()
        return True

    def _serving(self, spec: DeploymentSpec) -> tuple[Resizable, _Live, Handle, DeploymentSpec] | None:
        """The backend, live state, serving generation and its spec, when an update of `spec` may roll within
        the room; else None."""
        controller = self.controller
        backend = controller.backend
        if not isinstance(backend, Resizable):
            return None
        with controller._lock:
            live = controller._live.get((spec.endpoint, spec.name))
            old = live.serving if live is not None else None
        if live is None or old is None:
            return None
        try:
            record = controller.state.deployment(spec.endpoint, spec.name)
        except UnknownResource:
            return None
        if record.serving_generation != old.generation or record.serving_spec is None:
            return None
        return backend, live, old, record.serving_spec


class _Roll:
    """One update within the room, step by step."""

    def __init__(
        self,
        controller: Controller,
        backend: Resizable,
        live: _Live,
        spec: DeploymentSpec,
        generation: int,
        old: Handle,
        old_spec: DeploymentSpec,
        plan: RollPlan,
    ) -> None:
        self.controller, self.backend, self.live, self.plan = controller, backend, live, plan
        self.spec, self.generation, self.old, self.old_spec = spec, generation, old, old_spec
        self.handle: Handle | None = None
        self.old_size = plan.old_size
        self.new_size = 0
        self.shrunk = False  # whether the old generation gave up instances: they come back if this one fails
        self.timeout = controller.ready_timeout

    def run(self) -> None:
        try:
            for old_size, new_size in self.plan.steps:
                if old_size == 0:
                    break  # the old generation stops once the new one takes all traffic
                if old_size < self.old_size:
                    self._share(old_size)  # fewer requests to the one that shrinks, then shrink it
                    self.shrunk = True
                    self._resize(self.old, self.old_spec, old_size, self._old_gone)
                    self.old_size = old_size
                self._grow(new_size)
                self._share(self.old_size)
        except Exception as error:
            self._roll_back(error)
            return
        assert self.handle is not None  # the plan's first step starts it
        self.controller._promote(self.spec, self.handle, grow=self._finish)
        if self.live.serving is not self.handle:  # superseded or deleted at the last moment: it was stopped
            self._restore_old()

    def _grow(self, size: int) -> None:
        controller, key = self.controller, (self.spec.endpoint, self.spec.name)
        if self.handle is None:
            handle = self.handle = self.backend.start(self.spec, self.generation, size)
            controller.state.save_runtime(*key, self.generation, handle.record().to_json())
            with controller._lock:
                if not controller._wanted(self.live, self.generation):
                    raise DeploymentFailed(f"{key[0]}/{key[1]} generation {self.generation} was superseded")
                self.live.starting[self.generation] = handle
        else:
            with controller._lock:  # never resized once superseded or deleted: that would bring it back
                if self._new_gone():
                    raise DeploymentFailed(f"{key[0]}/{key[1]} generation {self.generation} was superseded")
                self.backend.resize(self.handle, self.spec, size)
        self.backend.wait_resized(self.handle, size, self.timeout, self._new_gone)
        self.new_size = size

    def _resize(self, handle: Handle, spec: DeploymentSpec, size: int, gone: Callable[[], bool]) -> None:
        with self.controller._lock:
            if gone():
                raise DeploymentFailed(f"{handle.endpoint}/{handle.deployment} was updated again or deleted")
            self.backend.resize(handle, spec, size)
        self.backend.wait_resized(handle, size, self.timeout, gone)

    def _share(self, old_size: int) -> None:
        """Traffic to both generations, in proportion to `old_size` and the new one's instances."""
        if self.handle is None or not self.new_size:
            return
        controller = self.controller
        with controller._lock:
            self.live.beside, self.live.shares = self.handle, (old_size, self.new_size)
        controller.routes_changed()
        time.sleep(_reload_grace())

    def _finish(self) -> None:
        """Once the new generation serves alone and the old one is stopped: its full size, then its own settings
        (autoscaling bounds)."""
        full = self.plan.steps[-1][1]
        assert self.handle is not None
        try:
            if self.new_size < full:
                self._resize(self.handle, self.spec, full, self._deleted)
            with self.controller._lock:
                if not self._deleted():
                    self.backend.resize(self.handle, self.spec, None)
        except Exception as error:  # it serves, smaller: the backend starts the rest once there is room
            logger.warning(
                "%s/%s generation %d serves with %d of %d instances for now: %s",
                self.spec.endpoint,
                self.spec.name,
                self.generation,
                self.new_size,
                full,
                error,
            )

    def _roll_back(self, error: Exception) -> None:
        """Stop the new generation, report why, and give the old one back its instances."""
        controller = self.controller
        if self.handle is not None:
            time.sleep(controller._withdraw(self.live, self.handle))
        controller._failed(self.spec, self.generation, self.handle, error)
        self._restore_old()

    def _restore_old(self) -> None:
        """Give the old generation back the instances it had, and its own settings, if it still serves."""
        controller = self.controller
        try:
            with controller._lock:
                if self._old_gone() or not self.shrunk:
                    return
                self.backend.resize(self.old, self.old_spec, self.plan.old_size)
            self.backend.wait_resized(self.old, self.plan.old_size, self.timeout, self._old_gone)
            with controller._lock:
                if not self._old_gone():
                    self.backend.resize(self.old, self.old_spec, None)  # its own settings (autoscaling bounds)
        except Exception:
            logger.exception(
                "%s/%s generation %d could not get back its %d instances",
                self.spec.endpoint,
                self.spec.name,
                self.old.generation,
                self.plan.old_size,
            )

    def _deleted(self) -> bool:
        return self.controller._live.get((self.spec.endpoint, self.spec.name)) is not self.live

    def _old_gone(self) -> bool:
        """Whether the old generation no longer serves (deleted, or replaced)."""
        return self._deleted() or self.live.serving is not self.old

    def _new_gone(self) -> bool:
        """Whether the new generation was superseded or deleted while it grew."""
        return self._deleted() or self.live.starting.get(self.generation) is not self.handle
