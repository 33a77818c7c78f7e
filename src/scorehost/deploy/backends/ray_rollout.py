"""Updates on Ray that roll within the room the cluster has.

Each generation is a Serve application of its own, so the usual rolling update needs room for all of the
new generation beside the old one; a cluster the old one fills has none. Then the update rolls within the
room instead (`plan`): the old generation shrinks a few replicas at a time and the new one grows into the
room they leave, both taking traffic meanwhile, until the new one serves alone and grows to its full size.
Both change size in place: a generation is deployed with a fixed Serve version (its application's name),
so running it again with another `num_replicas` (or autoscaling bounds pinned at one number) starts or
stops only the difference, never restarting the replicas that stay.

An update that could never fit is refused before anything changes: one whose replicas the room could not
hold even with the old generation gone, and one where a single replica of the new generation does not fit
beside the last replica of the old one (the update would have a moment with nothing serving).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorehost.deploy.backends.base import RollPlan
from scorehost.deploy.backends.ray_status import Unplaced, state_name
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeploymentFailed, DeploymentTimeout, InvalidSpec

if TYPE_CHECKING:
    from scorehost.deploy.backends.ray_serve import RayBackend, RayGeneration

__all__ = [
    "AppUsage",
    "deployed_sizing",
    "full_size",
    "plan",
    "plan_update",
    "resizing",
    "roll_steps",
    "sized_options",
    "sizing",
    "wait_resized",
]

# The share of the new generation's replicas started at each step, as Serve's own rolling update does
# (its rolling_update_percentage): each step waits for the replicas stopped to drain.
BATCH = 0.2
_FLAGS = {"CPU": "--num-cpus", "GPU": "--num-gpus"}

Resources = Mapping[str, float]


@dataclass(frozen=True)
class AppUsage:
    """What one Serve application holds of the cluster, or will: its replicas and each one's resources."""

    name: str
    per_replica: Resources
    replicas: int  # every replica Serve lists, stopping ones included: they hold their resources until gone
    running: int
    target: int  # the replicas Serve aims for
    deleting: bool = False


def full_size(spec: DeploymentSpec) -> int:
    """The replicas a generation of `spec` starts with: its count, or its floor when autoscaled."""
    assert spec.ray is not None
    return (spec.ray.min_replicas if spec.ray.autoscaling else spec.instances) or 1


def sized_options(options: Mapping[str, Any], instances: int | None) -> dict[str, Any]:
    """Serve deployment options `options` with `instances` replicas (None: unchanged): `num_replicas`, or
    autoscaling bounds pinned at it, which Serve applies at once."""
    sized = dict(options)
    if instances is None:
        return sized
    autoscaling = sized.get("autoscaling_config")
    if autoscaling:
        pinned = {**dict(autoscaling), "min_replicas": instances, "max_replicas": instances}
        pinned.pop("initial_replicas", None)  # Serve refuses one outside the bounds
        sized["autoscaling_config"] = pinned
    else:
        sized["num_replicas"] = instances
    return sized


def _cost(spec: DeploymentSpec) -> dict[str, float]:
    assert spec.ray is not None
    return {"CPU": spec.ray.num_cpus, "GPU": spec.ray.num_gpus}


def _fits(room: Resources, cost: Resources) -> int:
    """How many replicas of `cost` fit in `room` (counted over the cluster, as Ray's totals are)."""
    counts = [math.floor(room.get(name, 0.0) / need + 1e-9) for name, need in cost.items() if need > 0]
    return max(min(counts), 0) if counts else 1 << 30


def _plus(room: Resources, cost: Resources, times: float) -> dict[str, float]:
    names = set(room) | set(cost)
    return {name: room.get(name, 0.0) + times * cost.get(name, 0.0) for name in names}


def _short(room: Resources, cost: Resources, count: int) -> str:
    """The resource that `count` replicas of `cost` lack in `room`."""
    return next(name for name, need in cost.items() if need > 0 and room.get(name, 0.0) + 1e-9 < count * need)


def roll_steps(
    old: int, old_cost: Resources, full: int, new_cost: Resources, free: Resources, batch: int
) -> tuple[tuple[int, int], ...]:
    """The sizes (old, new) an update passes through, from `old` replicas of the old generation and `free`
    room: each step stops as few old replicas as it must to start up to `batch` new ones, keeping at least one
    old replica until the new generation serves; the last step, (0, full), stops the old generation."""
    steps: list[tuple[int, int]] = []
    new = 0
    room = dict(free)
    while new < full:
        step = next(
            (
                (stop, want)
                for want in range(min(full, new + batch), new, -1)
                for stop in range(old)  # never the last one: it serves until the new generation does
                if _fits(_plus(room, old_cost, stop), new_cost) >= want - new
            ),
            None,
        )
        if step is None:  # only the old generation's last replica is in the way: it goes once the new one serves
            break
        stop, want = step
        room = _plus(_plus(room, old_cost, stop), new_cost, -(want - new))
        old, new = old - stop, want
        steps.append((old, new))
    if not steps:
        raise ValueError("no replica of the new generation fits beside the old one's last")
    steps.append((0, full))
    return tuple(steps)


def plan(
    spec: DeploymentSpec,
    old: str,
    apps: Iterable[AppUsage],
    total: Resources,
    free: Resources,
) -> RollPlan | None:
    """How generation `spec` replaces the Serve application `old` (`apps`: every application on the cluster;
    `total`, `free`: the cluster's resources): None when it fits beside it, else the steps of an update within
    the room. InvalidSpec naming the fix when it can never fit."""
    found = {app.name: app for app in apps}
    serving = found.get(old)
    size = serving.running or serving.replicas if serving is not None else 0
    if serving is None or not size:
        return None  # nothing serves there to make room: the usual update, and its checks
    prefix = old.rsplit(".", 1)[0] + "."
    # Ray's count of free resources lags behind replicas just started: never more than Serve's replicas leave.
    soon = {name: free.get(name, 0.0) for name in _FLAGS}
    for name in _FLAGS:
        held = sum(app.replicas * app.per_replica.get(name, 0.0) for app in found.values())
        soon[name] = max(min(soon[name], total.get(name, 0.0) - held), 0.0)
    # Room that is being freed: older or superseded generations of this deployment, applications being deleted.
    leaving = [app for app in found.values() if app.name != old and (app.name.startswith(prefix) or app.deleting)]
    for app in leaving:
        soon = _plus(soon, app.per_replica, app.replicas)
    new_cost, full = _cost(spec), full_size(spec)
    if _fits(soon, new_cost) >= full:
        return None
    old_cost = {name: serving.per_replica.get(name, 0.0) for name in _FLAGS}
    room = _plus(soon, old_cost, size)  # what this deployment may use: all but what others hold
    where = f"{spec.endpoint}/{spec.name} cannot be updated"
    if _fits(room, new_cost) < full:
        name = _short(room, new_cost, full)
        others = max(total.get(name, 0.0) - room.get(name, 0.0), 0.0)
        raise InvalidSpec(
            f"{where}: {full} x {new_cost[name]:g} {name} need {full * new_cost[name]:g} {name}s, and the cluster "
            f"has {total.get(name, 0.0):g}, of which other deployments hold {others:g}. Stop or shrink other "
            f"deployments, ask for fewer {name}s per replica ({_FLAGS[name]}) or fewer replicas, or add nodes"
        )
    beside_last = _plus(room, old_cost, -1)
    if _fits(beside_last, new_cost) < 1:
        name = _short(beside_last, new_cost, 1)
        raise InvalidSpec(
            f"{where} without a gap in serving: one replica of the new generation ({new_cost[name]:g} {name}) does "
            f"not fit beside the last replica of the serving one ({old_cost[name]:g} {name}) in the "
            f"{room.get(name, 0.0):g} {name}s this deployment may use. Ask for fewer {name}s per replica "
            f"({_FLAGS[name]}), stop or shrink other deployments, or add nodes; or delete the deployment and "
            "create it again, which stops it serving meanwhile"
        )
    if spec.ray is not None and spec.ray.max_replicas is not None:
        # Autoscaled: it takes over as many replicas as the old one had, as far as its bounds and the room allow,
        # and its autoscaler goes on from there rather than from its floor.
        full = max(full, min(spec.ray.max_replicas, size, _fits(room, new_cost)))
    steps = roll_steps(size, old_cost, full, new_cost, soon, max(1, math.ceil(BATCH * full)))
    return RollPlan(max(serving.target, size), steps)


def sizing(options: Mapping[str, Any]) -> tuple[Any, ...]:
    """What decides the number of replicas in Serve deployment options: `num_replicas`, or autoscaling bounds."""
    autoscaling: Any = options.get("autoscaling_config")  # Serve's details say DEFAULT.VALUE for none
    if isinstance(autoscaling, Mapping) and autoscaling:
        return ("autoscaling", autoscaling.get("min_replicas"), autoscaling.get("max_replicas"))
    if hasattr(autoscaling, "max_replicas"):  # Serve's AutoscalingConfig
        return ("autoscaling", autoscaling.min_replicas, autoscaling.max_replicas)
    replicas = options.get("num_replicas")
    return ("fixed", replicas if isinstance(replicas, int) else None)


def deployed_sizing(backend: RayBackend, generation: RayGeneration) -> tuple[Any, ...] | None:
    """`sizing` of the options `generation` runs with; None when it is gone or being deleted."""
    app = _details(backend).applications.get(generation.app_name)
    deployment = app.deployments.get(_deployment_name()) if app is not None else None
    if deployment is None or state_name(app.status) == "DELETING":
        return None
    schema = deployment.deployment_config
    return sizing({"autoscaling_config": schema.autoscaling_config, "num_replicas": schema.num_replicas})


def _details(backend: RayBackend) -> Any:
    """Serve's account of every application: each deployment's replicas, their resources and options."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeInstanceDetails

    with backend._serve_lock:
        client = _get_global_client()
        assert client is not None  # the backend started Serve, or found it running
        return ServeInstanceDetails(**client.get_serve_details())


def _deployment_name() -> str:
    from scorehost.ray.serve_app import DEPLOYMENT_NAME

    return DEPLOYMENT_NAME


def plan_update(backend: RayBackend, spec: DeploymentSpec, old: RayGeneration) -> RollPlan | None:
    """`plan` on the cluster `backend` is connected to, as it is now."""
    apps = []
    for name, app in _details(backend).applications.items():
        deployment = app.deployments.get(_deployment_name())
        if deployment is None:  # not one of ours: what it holds is in the cluster's free resources already
            continue
        states = [state_name(replica.state) for replica in deployment.replicas]
        resources = {key: float(value) for key, value in (deployment.required_resources or {}).items()}
        apps.append(
            AppUsage(
                name,
                resources,
                len(states),
                states.count("RUNNING"),
                deployment.target_num_replicas,
                state_name(app.status) == "DELETING",
            )
        )
    ray = backend._ray
    return plan(spec, old.app_name, apps, ray.cluster_resources(), ray.available_resources())


def wait_resized(
    backend: RayBackend, generation: RayGeneration, instances: int, timeout: float, cancelled: Callable[[], bool]
) -> None:
    """Return once exactly `instances` replicas of `generation` run, and no others (starting or stopping)."""
    deadline = time.monotonic() + timeout
    unplaced = Unplaced(backend.pending_grace)
    while True:
        if cancelled():
            raise DeploymentFailed(f"{generation.app_name} was superseded or deleted while it was resized")
        app = backend._application(generation)
        state = state_name(app.status) if app is not None else "DELETED"
        if state in ("DELETED", "DELETING"):
            raise DeploymentFailed(f"{generation.app_name} was stopped while it was resized")
        if state == "DEPLOY_FAILED":
            backend.wait_ready(generation, 0)  # raises with the replicas' own error, as a failed start does
        deployment = app.deployments.get(_deployment_name())
        counts = {state_name(key): count for key, count in (getattr(deployment, "replica_states", None) or {}).items()}
        if state == "RUNNING" and {key: count for key, count in counts.items() if count} == {"RUNNING": instances}:
            return
        message = str(getattr(deployment, "message", "") or "")
        if unplaced.past_grace(message):
            free = backend._ray.available_resources().get("CPU", 0.0)
            raise DeploymentFailed(
                f"{generation.app_name} cannot grow to {instances} replicas on Ray: the cluster has no free room "
                f"for them ({free:g} CPUs free). Stop or shrink other deployments, or add nodes",
                cause=message,
            )
        if time.monotonic() > deadline:
            raise DeploymentTimeout(
                f"{generation.app_name} did not reach {instances} replicas on Ray within {timeout:g} s ({counts})"
            )
        time.sleep(backend.poll_s)


def resizing(app: Any) -> bool:
    """Whether Serve's status of an application says it is changing while replicas of it run: it serves."""
    if app is None or state_name(app.status) != "DEPLOYING":
        return False
    deployment = app.deployments.get(_deployment_name())
    states = getattr(deployment, "replica_states", None) or {}
    return any(state_name(state) == "RUNNING" and count for state, count in states.items())
