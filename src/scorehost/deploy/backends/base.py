"""What a backend does for the control plane: run deployment generations, report on them, find them again.

The control plane and the gateway see backends only through `Backend`. Nothing here names a process,
a pid or a port: a local backend runs `scorehost serve` processes, a Ray backend replicas on other
machines, and both answer with opaque handles, instance states and base URLs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from scorehost.deploy.spec import DeploymentSpec
from scorehost.timestamps import iso_utc

__all__ = [
    "Backend",
    "DeploymentRecord",
    "DeploymentStatus",
    "Handle",
    "InstanceState",
    "InstanceStatus",
    "Resizable",
    "RollPlan",
]


class InstanceState(StrEnum):
    """Where one instance of a deployment generation stands."""

    STARTING = "starting"  # started, init() not finished yet
    READY = "ready"  # answers /ready: takes traffic
    RESTARTING = "restarting"  # died; waiting out its backoff before the next start
    FAILED = "failed"  # cannot start (init() raised, bad options): not restarted
    STOPPED = "stopped"  # stopped on request


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance: its state, its base URL, how often it was restarted and why it last stopped."""

    name: str
    state: InstanceState
    url: str | None = None
    restarts: int = 0
    last_error: str | None = None
    started_at: float | None = None  # Unix time of the current (or last) start
    pid: int | None = None  # the process on this machine, for the local backend

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": str(self.state), "started_at": iso_utc(self.started_at)}


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """A deployment generation: its overall state and each instance's."""

    endpoint: str
    deployment: str
    generation: int
    state: InstanceState
    instances: tuple[InstanceStatus, ...] = ()

    @property
    def restarts(self) -> int:
        return sum(instance.restarts for instance in self.instances)

    @property
    def last_error(self) -> str | None:
        errors = [instance.last_error for instance in self.instances if instance.last_error]
        return errors[-1] if errors else None

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "generation": self.generation,
            "state": str(self.state),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "instances": [instance.to_json() for instance in self.instances],
        }

    @staticmethod
    def summarize(states: list[InstanceState]) -> InstanceState:
        """The deployment's state from its instances': the worst one decides, ready only when all are."""
        for state in (InstanceState.FAILED, InstanceState.RESTARTING, InstanceState.STARTING, InstanceState.READY):
            if state in states:
                return state
        return InstanceState.STOPPED


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """What the control plane stores to find a running generation again after it restarts.

    `data` belongs to the backend named by `backend`; the control plane stores it as JSON, unread.
    """

    backend: str
    endpoint: str
    deployment: str
    generation: int
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "generation": self.generation,
            "data": dict(self.data),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> DeploymentRecord:
        return cls(
            backend=str(value["backend"]),
            endpoint=str(value["endpoint"]),
            deployment=str(value["deployment"]),
            generation=int(value["generation"]),
            data=dict(value.get("data") or {}),
        )


class Handle(Protocol):
    """A running deployment generation, as its backend knows it; only its backend can act on it."""

    @property
    def endpoint(self) -> str: ...

    @property
    def deployment(self) -> str: ...

    @property
    def generation(self) -> int: ...

    def record(self) -> DeploymentRecord:
        """What to store to `adopt` this generation after a control-plane restart (stable for its life)."""
        ...


class Backend(Protocol):
    """Runs deployment generations. A generation is one immutable spec, started once and stopped once;
    an update starts the next generation beside it (see the control plane's rolling update)."""

    name: str

    def check(self, spec: DeploymentSpec) -> None:
        """Refuse, before anything is stored or started, a spec this backend cannot run (InvalidSpec, or
        ServiceUnavailable when what it runs on cannot be reached), with a message that names the fix."""
        ...

    def start(self, spec: DeploymentSpec, generation: int) -> Handle:
        """Begin starting `spec` as `generation`, without waiting for init(); supervise it from now on."""
        ...

    def wait_ready(self, handle: Handle, timeout: float) -> None:
        """Return once every instance is ready; raise DeploymentFailed (with the cause and the log's
        last lines) when it cannot start, DeploymentTimeout when `timeout` seconds pass first."""
        ...

    def stop(self, handle: Handle, drain_seconds: float) -> None:
        """Stop taking new requests, give in-flight ones `drain_seconds`, then end it; returns when gone."""
        ...

    def status(self, handle: Handle) -> DeploymentStatus:
        """Each instance's state, restarts and last error."""
        ...

    def targets(self, handle: Handle) -> list[str]:
        """Where the instances ready for traffic now answer: `http://host:port` or `unix:PATH` each."""
        ...

    def logs(self, handle: Handle, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        """The last `lines` log lines (without newlines); with `follow`, then new ones until it stops."""
        ...

    def adopt(self, record: DeploymentRecord) -> Handle | None:
        """The generation `record` names, supervised again, if it still runs and answers; else None
        (then nothing of it is left running, and the control plane starts it afresh)."""
        ...

    def close(self) -> None:
        """Stop supervising, leaving every generation running for a later `adopt` (control-plane exit)."""
        ...


@dataclass(frozen=True, slots=True)
class RollPlan:
    """An update that rolls within the room there is: the sizes `(old, new)` the two generations pass through,
    in order. Each step shrinks the old generation first, then grows the new one; the last has old 0: the new
    generation takes all traffic, the old one stops, and the new one grows to its full size."""

    old_size: int  # the old generation's instances now: what it gets back if the update fails
    steps: tuple[tuple[int, int], ...]


@runtime_checkable
class Resizable(Protocol):
    """Optional: a backend whose generations share a bounded room (a Ray cluster's CPUs and GPUs) and can change
    their number of instances in place, without restarting the others. An update that does not fit beside the
    generation it replaces then rolls within the room (the control plane's `fitting`): the new generation grows
    as the old one shrinks, both taking traffic meanwhile."""

    def plan_update(self, spec: DeploymentSpec, old: Handle, old_spec: DeploymentSpec) -> RollPlan | None:
        """None when `spec` fits beside `old` (the usual rolling update); else the steps of one that fits now.
        InvalidSpec, naming the fix, when no update can replace `old` without a gap in serving."""
        ...

    def start(self, spec: DeploymentSpec, generation: int, instances: int | None = None) -> Handle:
        """`Backend.start`, with `instances` of it for now (None: as the spec says)."""
        ...

    def resize(self, handle: Handle, spec: DeploymentSpec, instances: int | None) -> None:
        """Have `instances` of the generation `spec` started (None: as the spec says), the others untouched."""
        ...

    def wait_resized(self, handle: Handle, instances: int, timeout: float, cancelled: Callable[[], bool]) -> None:
        """Return once exactly `instances` are ready and no others hold room; DeploymentFailed when they cannot
        start, or once `cancelled()`; DeploymentTimeout after `timeout` seconds."""
        ...
