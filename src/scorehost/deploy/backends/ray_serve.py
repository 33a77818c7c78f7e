"""The Ray backend: each deployment generation is one Ray Serve application of `ScoringReplica`s, under the
route prefix `/<endpoint>/<deployment>/<generation>` of the cluster's Serve ingress.

The gateway reaches a generation at `http://<ingress>/<prefix>`, so keys, traffic split and rolling
updates stay the gateway's and the controller's, whatever runs the replicas. Ray is imported only when a
backend is made (`pip install 'scorehost[ray]'`). Not yet wired into the control plane's specs and CLI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scorehost.deploy.backends.base import DeploymentRecord, DeploymentStatus, Handle, InstanceState, InstanceStatus
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeploymentFailed, DeploymentTimeout, InvalidSpec, UnknownResource
from scorehost.ray.serve_app import DEPLOYMENT_NAME, application

__all__ = ["RayBackend", "RayGeneration"]

_UNSCHEDULABLE = "to be scheduled"  # Serve's status message for replicas no node has resources for

_STATES = {
    "NOT_STARTED": InstanceState.STARTING,
    "DEPLOYING": InstanceState.STARTING,
    "RUNNING": InstanceState.READY,
    "UNHEALTHY": InstanceState.RESTARTING,
    "DEPLOY_FAILED": InstanceState.FAILED,
    "DELETING": InstanceState.STOPPED,
}
_REPLICA_STATES = {
    "RUNNING": InstanceState.READY,
    "STARTING": InstanceState.STARTING,
    "UPDATING": InstanceState.STARTING,
    "RECOVERING": InstanceState.RESTARTING,
    "STOPPING": InstanceState.STOPPED,
    "PENDING_MIGRATION": InstanceState.RESTARTING,
}


@dataclass(frozen=True)
class RayGeneration:
    """A generation running as the Serve application `app_name` (the Ray backend's `Handle`)."""

    endpoint: str
    deployment: str
    generation: int

    @property
    def app_name(self) -> str:
        return f"{self.endpoint}.{self.deployment}.{self.generation}"

    @property
    def route_prefix(self) -> str:
        return f"/{self.endpoint}/{self.deployment}/{self.generation}"

    def record(self) -> DeploymentRecord:
        return DeploymentRecord("ray", self.endpoint, self.deployment, self.generation, {"app": self.app_name})


class RayBackend:
    """Runs deployments on the Ray cluster this process is connected to (`ray.init(address=...)` first, or
    `address`), behind Serve's ingress at `ingress` (`http://HOST:PORT`, as the gateway reaches it)."""

    name = "ray"

    def __init__(
        self, *, ingress: str, address: str | None = None, replica_cpus: float = 1.0, poll_s: float = 0.5
    ) -> None:
        try:
            import ray
            from ray import serve
        except ImportError:
            raise InvalidSpec("the Ray backend needs Ray Serve: pip install 'scorehost[ray]'") from None
        self._serve = serve
        self._connected_here = not ray.is_initialized()
        if self._connected_here:
            if address is None:
                raise InvalidSpec("the Ray backend needs the cluster's address (HOST:PORT of its head)")
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as error:
                raise DeploymentFailed(f"cannot reach the Ray cluster at {address}: {error}") from None
        self._ray = ray
        self.ingress = ingress.rstrip("/")
        self.replica_cpus = replica_cpus
        self.poll_s = poll_s

    def start(self, spec: DeploymentSpec, generation: int) -> RayGeneration:
        if spec.models:
            raise InvalidSpec("the Ray backend does not serve registered models yet; use --model-dir on shared storage")
        handle = RayGeneration(spec.endpoint, spec.name, generation)
        options = {"entry_script": str(spec.script), **spec.serve_options}
        actor_options: dict[str, Any] = {"num_cpus": self.replica_cpus}
        if spec.environment:
            actor_options["runtime_env"] = {"env_vars": dict(spec.environment)}
        deployment = {"num_replicas": spec.instances, "ray_actor_options": actor_options}
        app = application(options, deployment)
        # Not waiting: wait_ready() does, and reports a script that cannot start with Serve's message.
        self._serve._run(app, _blocking=False, name=handle.app_name, route_prefix=handle.route_prefix)
        return handle

    def wait_ready(self, handle: Handle, timeout: float) -> None:
        generation = self._own(handle)
        deadline = time.monotonic() + timeout
        while True:
            status = self._application(generation)
            state = _name(status.status) if status is not None else "NOT_STARTED"
            if state == "RUNNING":
                return
            message = self._message(status) if status is not None else ""
            if state == "DEPLOY_FAILED":
                raise DeploymentFailed(f"{generation.app_name} cannot start on Ray", cause=message)
            if _UNSCHEDULABLE in message:
                # Ray leaves replicas it has no room for pending, silently; Serve says so only in this message.
                raise DeploymentFailed(
                    f"{generation.app_name} cannot start on Ray: the cluster has no room for its replicas. Ask for "
                    "fewer CPUs per replica or fewer replicas, or add nodes",
                    cause=message,
                )
            if time.monotonic() > deadline:
                raise DeploymentTimeout(f"{generation.app_name} was not ready on Ray within {timeout:g} s ({state})")
            time.sleep(self.poll_s)

    def stop(self, handle: Handle, drain_seconds: float) -> None:
        generation = self._own(handle)
        if self._application(generation) is not None:
            self._serve.delete(generation.app_name, _blocking=True)

    def status(self, handle: Handle) -> DeploymentStatus:
        generation = self._own(handle)
        app = self._application(generation)
        if app is None:
            return DeploymentStatus(*self._key(generation), InstanceState.STOPPED, ())
        state = _STATES.get(_name(app.status), InstanceState.STARTING)
        deployment = app.deployments.get(DEPLOYMENT_NAME)
        counts: dict[str, int] = dict(getattr(deployment, "replica_states", {}) or {})
        instances = []
        error = self._message(app) if state is InstanceState.FAILED else None
        for replica_state, count in sorted(counts.items()):
            name = _name(replica_state)
            for index in range(count):
                instance_state = _REPLICA_STATES.get(name, InstanceState.STARTING)
                url = self._url(generation) if instance_state is InstanceState.READY else None
                instances.append(
                    InstanceStatus(
                        f"{generation.deployment}-{generation.generation}-{name.lower()}-{index + 1}",
                        instance_state,
                        url,
                    )
                )
        if not instances:
            instances.append(InstanceStatus(f"{generation.deployment}-{generation.generation}", state, None, 0, error))
        return DeploymentStatus(*self._key(generation), state, tuple(instances))

    def targets(self, handle: Handle) -> list[str]:
        generation = self._own(handle)
        app = self._application(generation)
        running = app is not None and _name(app.status) in ("RUNNING", "UNHEALTHY")
        return [self._url(generation)] if running else []

    def logs(self, handle: Handle, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        generation = self._own(handle)
        yield (
            f"{generation.app_name} runs on Ray: its replicas' logs are on their nodes, in Ray's session folder "
            f"(logs/serve/replica_{generation.app_name}_{DEPLOYMENT_NAME}_*.log)"
        )

    def adopt(self, record: DeploymentRecord) -> RayGeneration | None:
        if record.backend != self.name:
            return None
        generation = RayGeneration(record.endpoint, record.deployment, record.generation)
        return generation if self._application(generation) is not None else None

    def close(self) -> None:
        if self._connected_here:  # the applications keep running on the cluster
            self._ray.shutdown()

    # --- helpers -----------------------------------------------------------------------------------

    def _own(self, handle: Handle) -> RayGeneration:
        if not isinstance(handle, RayGeneration):
            raise UnknownResource(f"{handle.endpoint}/{handle.deployment} is not run by the Ray backend")
        return handle

    def _application(self, generation: RayGeneration) -> Any:
        return self._serve.status().applications.get(generation.app_name)

    def _url(self, generation: RayGeneration) -> str:
        return self.ingress + generation.route_prefix

    @staticmethod
    def _key(generation: RayGeneration) -> tuple[str, str, int]:
        return generation.endpoint, generation.deployment, generation.generation

    @staticmethod
    def _message(app: Any) -> str:
        deployment = app.deployments.get(DEPLOYMENT_NAME)
        return str(getattr(deployment, "message", "") or getattr(app, "message", ""))


def _name(state: Any) -> str:
    """A Serve status enum's name (`ApplicationStatus.RUNNING` -> "RUNNING"), whether it arrives as enum or str."""
    return str(getattr(state, "value", state)).rsplit(".", 1)[-1]
