"""The control plane's one backend: each generation goes to the backend its spec names.

Local deployments run as `scorehost serve` processes; `--backend ray` ones as Ray Serve replicas. The Ray
backend is made on first use (Ray is an extra, and connecting takes a second), for the cluster the first
Ray deployment names; one control plane uses one cluster, since a process joins one Ray cluster at a time.
Because handles keep their backend, an update may move a deployment from one backend to the other with
the same rolling update as any other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from scorehost.deploy.backends.base import Backend, DeploymentRecord, DeploymentStatus, Handle, Resizable, RollPlan
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeployError, ServiceUnavailable

__all__ = ["BackendRouter"]

logger = logging.getLogger("scorehost.controlplane")


def _ray_backend(address: str, home: Path) -> Backend:
    from scorehost.deploy.backends.ray_serve import RayBackend

    return RayBackend(address, home=home)


class BackendRouter:
    """A `Backend` that hands each call to the local backend or the Ray one, by spec, handle or record."""

    name = "router"

    def __init__(self, home: Path, local: Backend, ray_factory: Callable[[str, Path], Backend] = _ray_backend) -> None:
        self.home = home
        self.local = local
        self._ray_factory = ray_factory
        self._ray: Backend | None = None
        self._lock = threading.Lock()

    def ray(self, address: str) -> Backend:
        """The Ray backend, connecting to `address` the first time."""
        with self._lock:
            if self._ray is None:
                logger.info("connecting to the Ray cluster at %s", address)
                self._ray = self._ray_factory(address, self.home)
            return self._ray

    def check(self, spec: DeploymentSpec) -> None:
        self._for_spec(spec).check(spec)

    def start(self, spec: DeploymentSpec, generation: int, instances: int | None = None) -> Handle:
        backend = self._for_spec(spec)
        if instances is None:
            return backend.start(spec, generation)
        return self._resizable(backend).start(spec, generation, instances)

    def plan_update(self, spec: DeploymentSpec, old: Handle, old_spec: DeploymentSpec) -> RollPlan | None:
        backend = self._for_spec(spec)
        if backend is not self._for(old) or not isinstance(backend, Resizable):
            return None  # moving to another backend, or one whose generations do not share a room
        return backend.plan_update(spec, old, old_spec)

    def resize(self, handle: Handle, spec: DeploymentSpec, instances: int | None) -> None:
        backend = self._for(handle)
        if instances is None and not isinstance(backend, Resizable):
            return  # its generations always have the size their spec says
        self._resizable(backend).resize(handle, spec, instances)

    def wait_resized(self, handle: Handle, instances: int, timeout: float, cancelled: Callable[[], bool]) -> None:
        self._resizable(self._for(handle)).wait_resized(handle, instances, timeout, cancelled)

    def wait_ready(self, handle: Handle, timeout: float) -> None:
        self._for(handle).wait_ready(handle, timeout)

    def stop(self, handle: Handle, drain_seconds: float) -> None:
        self._for(handle).stop(handle, drain_seconds)

    def status(self, handle: Handle) -> DeploymentStatus:
        return self._for(handle).status(handle)

    def targets(self, handle: Handle) -> list[str]:
        return self._for(handle).targets(handle)

    def logs(self, handle: Handle, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        return self._for(handle).logs(handle, follow=follow, lines=lines)

    def adopt(self, record: DeploymentRecord) -> Handle | None:
        if record.backend != "ray":
            return self.local.adopt(record)
        address = record.data.get("address")
        try:
            backend = self._ray if address is None else self.ray(str(address))
        except DeployError as error:  # the cluster is gone or unreachable: the generation is started afresh
            logger.error("cannot adopt %s/%s on Ray: %s", record.endpoint, record.deployment, error)
            return None
        return backend.adopt(record) if backend is not None else None

    def close(self) -> None:
        self.local.close()
        if self._ray is not None:
            self._ray.close()

    @staticmethod
    def _resizable(backend: Backend) -> Resizable:
        if not isinstance(backend, Resizable):
            raise TypeError(f"the {backend.name} backend cannot resize its generations")
        return backend

    def _for_spec(self, spec: DeploymentSpec) -> Backend:
        if spec.ray is None:
            return self.local
        return self.ray(spec.ray.address)

    def _for(self, handle: Handle) -> Backend:
        if handle.record().backend != "ray":
            return self.local
        if self._ray is None:
            raise ServiceUnavailable("no Ray cluster is connected")
        return self._ray
