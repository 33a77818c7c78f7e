"""How an update on Ray rolls within the room the cluster has (no cluster: the planning alone): the steps the
two generations pass through, the refusals that name the fix, the replica counts Serve is given, and how the
gateway's traffic is shared while both serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorehost.deploy.backends.base import RollPlan
from scorehost.deploy.backends.ray_rollout import AppUsage, plan, roll_steps, sized_options, sizing
from scorehost.deploy.controlplane.fitting import shared_targets
from scorehost.deploy.spec import DeploymentSpec, RayOptions
from scorehost.errors import InvalidSpec

CPU = {"CPU": 1.0, "GPU": 0.0}


def _spec(instances: int = 2, **ray: object) -> DeploymentSpec:
    options = RayOptions("head:6379", **ray)  # type: ignore[arg-type]
    return DeploymentSpec("mnist", "blue", Path("score.py"), Path("."), instances=instances, backend="ray", ray=options)


def _serving(replicas: int, cpus: float = 1.0, name: str = "mnist.blue.1") -> AppUsage:
    return AppUsage(name, {"CPU": cpus}, replicas, replicas, replicas)


def test_an_update_that_fits_beside_the_old_generation_is_the_usual_one() -> None:
    assert plan(_spec(2), "mnist.blue.1", [_serving(2)], {"CPU": 4}, {"CPU": 2}) is None


def test_on_a_full_cluster_the_old_generation_shrinks_as_the_new_one_grows() -> None:
    assert plan(_spec(2), "mnist.blue.1", [_serving(2)], {"CPU": 2}, {"CPU": 0}) == RollPlan(2, ((1, 1), (0, 2)))
    # Ten replicas: two at a time (Serve's own rolling update replaces 20% at a time), one old replica serving
    # until the new generation takes over.
    steps = roll_steps(10, CPU, 10, CPU, {"CPU": 0}, 2)
    assert steps == ((8, 2), (6, 4), (4, 6), (2, 8), (1, 9), (0, 10))
    # Free room is used first; a generation with smaller replicas needs fewer of the old ones to go.
    assert roll_steps(2, CPU, 3, CPU, {"CPU": 1}, 1) == ((2, 1), (1, 2), (0, 3))
    assert roll_steps(2, CPU, 4, {"CPU": 0.5}, {"CPU": 0}, 1) == ((1, 1), (1, 2), (0, 4))


def test_an_autoscaled_generation_takes_over_the_replicas_the_old_one_had() -> None:
    autoscaled = _spec(1, min_replicas=1, max_replicas=4)
    found = plan(autoscaled, "mnist.blue.1", [_serving(3)], {"CPU": 3}, {"CPU": 0})
    assert found == RollPlan(3, ((2, 1), (1, 2), (0, 3)))  # not down to its floor of 1 under the old one's load
    bounded = _spec(1, min_replicas=1, max_replicas=2)
    assert plan(bounded, "mnist.blue.1", [_serving(3)], {"CPU": 3}, {"CPU": 0}) == RollPlan(3, ((2, 1), (1, 2), (0, 2)))


def test_room_being_freed_counts_as_room() -> None:
    """Replicas still draining (an older generation, a deleted deployment) are gone by the time new ones start."""
    older = AppUsage("mnist.blue.0", {"CPU": 1.0}, 1, 0, 0)
    assert plan(_spec(1), "mnist.blue.1", [_serving(1), older], {"CPU": 2}, {"CPU": 0}) is None
    deleted = AppUsage("other.green.1", {"CPU": 1.0}, 1, 0, 0, deleting=True)
    assert plan(_spec(2), "mnist.blue.1", [_serving(1), deleted], {"CPU": 2}, {"CPU": 0}) == RollPlan(
        1, ((1, 1), (0, 2))
    )


def test_an_update_that_can_never_fit_is_refused_naming_the_fix() -> None:
    other = AppUsage("mnist.green.1", {"CPU": 1.0}, 1, 1, 1)
    with pytest.raises(InvalidSpec) as refused:
        plan(_spec(3), "mnist.blue.1", [_serving(1), other], {"CPU": 3}, {"CPU": 1})
    assert str(refused.value) == (
        "mnist/blue cannot be updated: 3 x 1 CPU need 3 CPUs, and the cluster has 3, of which other deployments "
        "hold 1. Stop or shrink other deployments, ask for fewer CPUs per replica (--num-cpus) or fewer replicas, "
        "or add nodes"
    )
    with pytest.raises(InvalidSpec) as refused:  # one new replica beside the last old one: there would be a gap
        plan(_spec(1, num_cpus=2), "mnist.blue.1", [_serving(2)], {"CPU": 2}, {"CPU": 0})
    assert "mnist/blue cannot be updated without a gap in serving: one replica of the new generation (2 CPU)" in str(
        refused.value
    )
    assert "delete the deployment and create it again" in str(refused.value)
    with pytest.raises(InvalidSpec, match=r"\(1 GPU\).*--num-gpus"):
        plan(_spec(1, num_cpus=0, num_gpus=1), "mnist.blue.1", [AppUsage("mnist.blue.1", {"GPU": 1}, 1, 1, 1)],
             {"CPU": 4, "GPU": 1}, {"CPU": 4, "GPU": 0})  # fmt: skip


def test_serve_is_given_the_replicas_of_each_step() -> None:
    assert sized_options({"num_replicas": 4, "max_ongoing_requests": 8}, 2) == {
        "num_replicas": 2,
        "max_ongoing_requests": 8,
    }
    autoscaled = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 8, "initial_replicas": 3}}
    pinned = sized_options(autoscaled, 2)
    assert pinned == {"autoscaling_config": {"min_replicas": 2, "max_replicas": 2}}  # Serve refuses 3 beyond 2
    assert sized_options(autoscaled, None) == autoscaled
    assert sizing(pinned) == ("autoscaling", 2, 2)
    assert sizing({"num_replicas": 2}) == ("fixed", 2)


def test_both_generations_take_traffic_in_proportion_to_their_replicas() -> None:
    old, new = ["http://ingress/mnist/blue/1"], ["http://ingress/mnist/blue/2"]
    assert shared_targets(old, new, (1, 1)) == old + new
    assert shared_targets(old, new, (4, 2)) == old * 2 + new
    assert shared_targets([], new, (1, 1)) == new
