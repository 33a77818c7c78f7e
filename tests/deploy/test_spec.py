"""Declarations of endpoints, deployments and traffic: accepted, or refused with the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorehost.deploy.spec import AuthMode, DeploymentSpec, EndpointSpec, RayOptions, Traffic, check_resource_name
from scorehost.errors import InvalidModelReference, InvalidSpec


@pytest.mark.parametrize("name", ["mnist", "blue", "a-1", "A" * 32, "abc"])
def test_valid_resource_names(name: str) -> None:
    assert check_resource_name("endpoint", name) == name


@pytest.mark.parametrize("name", ["", "ab", "1abc", "-abc", "abc-", "a_b", "a.b", "a/b", "../x", "A" * 33, "é-abc"])
def test_invalid_resource_names(name: str) -> None:
    with pytest.raises(InvalidSpec, match="is not a valid endpoint name: use 3-32 letters"):
        check_resource_name("endpoint", name)


def test_endpoint_auth_modes() -> None:
    assert EndpointSpec("mnist").auth is AuthMode.KEY
    assert EndpointSpec("mnist", auth="none").auth is AuthMode.NONE  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec, match="auth must be 'key' or 'none', not 'token'"):
        EndpointSpec("mnist", auth="token")  # type: ignore[arg-type]


def test_deployment_paths_are_resolved_inside_the_code_folder(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    spec = DeploymentSpec("mnist", "blue", Path("score.py"), tmp_path / "code", models=("m:1", "enc:prod"))
    assert spec.script == (tmp_path / "code" / "score.py").resolve()
    assert spec.code_dir == (tmp_path / "code").resolve()
    with pytest.raises(InvalidSpec, match="outside the code folder .*; pass --code-dir"):
        DeploymentSpec("mnist", "blue", Path("../score.py"), tmp_path / "code")
    with pytest.raises(InvalidSpec, match="instances must be between 1 and 64, not 0"):
        DeploymentSpec("mnist", "blue", Path("score.py"), tmp_path, instances=0)
    with pytest.raises(InvalidModelReference, match="not a valid model name"):
        DeploymentSpec("mnist", "blue", Path("score.py"), tmp_path, models=("../m",))
    with pytest.raises(InvalidSpec, match="not an environment variable name"):
        DeploymentSpec("mnist", "blue", Path("score.py"), tmp_path, environment={"A=B": "x"})


@pytest.mark.parametrize(
    "fields",
    [
        {"serve_options": {"debug_errors": True}},
        {"environment": {"SCOREHOST_DEBUG_ERRORS": "true"}},
        {"environment": {"SCOREHOST_DEBUG_ERRORS": "TRUE"}},
        {"environment": {"SCOREHOST_DEBUG_ERRORS": "1"}},
        {"environment": {"SCOREHOST_DEBUG_ERRORS": "yes"}},
        {"environment": {"SCOREHOST_DEBUG_ERRORS": "on"}},
    ],
)
def test_a_deployment_never_sends_what_run_raised(tmp_path: Path, fields: dict[str, object]) -> None:
    # What run() raised goes to the deployment's log only: debug errors are for `scorehost serve` alone.
    with pytest.raises(InvalidSpec, match="debug_errors is for local development with `scorehost serve`"):
        DeploymentSpec("mnist", "blue", Path("score.py"), tmp_path, **fields)  # type: ignore[arg-type]
    # A stored spec that says so is refused too.
    stored = DeploymentSpec("mnist", "blue", Path("score.py"), tmp_path).to_json()
    with pytest.raises(InvalidSpec, match="debug_errors is for local development"):
        DeploymentSpec.from_json({**stored, **fields})


def test_debug_errors_off_is_accepted(tmp_path: Path) -> None:
    spec = DeploymentSpec(
        "mnist",
        "blue",
        Path("score.py"),
        tmp_path,
        serve_options={"debug_errors": False},
        environment={"SCOREHOST_DEBUG_ERRORS": "false"},
    )
    assert DeploymentSpec.from_json(spec.to_json()) == spec


def test_traffic_must_sum_to_100() -> None:
    assert Traffic.parse(["blue=90", "green=10"]).split == {"blue": 90, "green": 10}
    assert Traffic.parse([]).split == {}
    with pytest.raises(InvalidSpec, match=r"traffic must sum to 100, not 110 \(blue=90, green=20\)"):
        Traffic.parse(["blue=90", "green=20"])
    with pytest.raises(InvalidSpec, match="'blue' is not DEPLOYMENT=PERCENT"):
        Traffic.parse(["blue"])
    with pytest.raises(InvalidSpec, match="is not DEPLOYMENT=PERCENT"):
        Traffic.parse(["blue=-5", "green=105"])
    with pytest.raises(InvalidSpec, match="a percentage is between 0 and 100"):
        Traffic({"blue": 150, "green": -50})


def test_mirror_rules_and_names_checked_against_deployments() -> None:
    traffic = Traffic({"blue": 100}, mirror="green", mirror_percent=10)
    traffic.check_against(["blue", "green"])
    with pytest.raises(InvalidSpec, match=r"the endpoint has no deployment 'green' \(deployments: blue\)"):
        traffic.check_against(["blue"])
    with pytest.raises(InvalidSpec, match="a mirror must be a deployment with 0%"):
        Traffic({"blue": 100}, mirror="blue", mirror_percent=10)
    with pytest.raises(InvalidSpec, match="mirror percentage is between 0 and 100"):
        Traffic({"blue": 100}, mirror="green", mirror_percent=101)


def _ray_spec(tmp_path: Path, **fields: object) -> DeploymentSpec:
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    values: dict[str, object] = {"endpoint": "mnist", "name": "blue", "script": Path("score.py"), "code_dir": tmp_path}
    return DeploymentSpec(**{**values, **fields})  # type: ignore[arg-type]


def test_ray_options_round_trip_through_json(tmp_path: Path) -> None:
    options = RayOptions(
        "head.internal:6379", min_replicas=1, max_replicas=8, num_cpus=0.5, num_gpus=0.25, max_queued=-1
    )
    spec = _ray_spec(tmp_path, backend="ray", ray=options, instances=200)  # more replicas than local processes
    again = DeploymentSpec.from_json(spec.to_json())
    assert again == spec
    assert again.ray is not None
    assert again.ray.autoscaling
    assert spec.to_json()["backend"] == "ray"
    assert _ray_spec(tmp_path).to_json()["ray"] is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "ray"}, "needs the cluster's address"),
        ({"ray": RayOptions("h:1")}, "need --backend ray"),
        ({"backend": "kubernetes"}, "backend must be one of local, ray"),
        ({"instances": 65}, "between 1 and 64"),
        ({"backend": "ray", "ray": RayOptions("h:1"), "instances": 1025}, "between 1 and 1024"),
    ],
)
def test_backend_and_ray_options_must_agree(tmp_path: Path, fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        _ray_spec(tmp_path, **fields)


def test_a_cluster_without_token_checks_is_refused_unless_a_deployment_says_so() -> None:
    """Records stored before --insecure-cluster existed read as refusing such a cluster."""
    assert RayOptions.from_json({"address": "h:1"}).insecure_cluster is False
    allowed = RayOptions.from_json({"address": "h:1", "insecure_cluster": True})
    assert RayOptions.from_json(allowed.to_json()).insecure_cluster is True


@pytest.mark.parametrize("gpus", [0, 0.0001, 0.5, 1, 2.0, 8, 1024])
def test_gpus_per_replica_are_a_share_of_one_or_whole_ones(gpus: float) -> None:
    assert RayOptions.from_json({"address": "h:1", "num_gpus": gpus}).num_gpus == gpus


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "localhost"}, "not a Ray cluster address: give HOST:PORT of its head"),
        ({"address": "h:99999"}, "not a Ray cluster address"),
        ({"address": "h:1", "min_replicas": 2}, "needs both --min-replicas and --max-replicas"),
        ({"address": "h:1", "min_replicas": 4, "max_replicas": 2}, r"1 <= min \(4\) <= max \(2\)"),
        ({"address": "h:1", "ingress": "ftp://x"}, "give http://HOST:PORT"),
        ({"address": "h:1", "max_ongoing": 0}, "max_ongoing must be between 1 and 10000"),
        ({"address": "h:1", "max_queued": 0}, "max_queued must be -1"),
        ({"address": "h:1", "num_cpus": -1}, "num_cpus must be between 0 and 1024"),
        ({"address": "h:1", "num_gpus": -1}, "num_gpus must be 0, a fraction of one GPU from 0.0001, or 1 to 1024"),
        ({"address": "h:1", "num_gpus": 1.5}, r"num_gpus must be .* whole GPUs, not 1.5"),
        ({"address": "h:1", "num_gpus": 0.00001}, "a fraction of one GPU from 0.0001"),  # finer than Ray counts
        ({"address": "h:1", "num_gpus": 1025}, "1 to 1024 whole GPUs, not 1025"),
        ({"address": "h:1", "replicas": 3}, "unknown Ray options: replicas"),
        ({"num_cpus": 1}, "needs the cluster's address"),
        ({"address": "h:1", "insecure_cluster": "yes"}, "insecure_cluster must be true or false, not 'yes'"),
    ],
)
def test_ray_options_are_checked_with_a_message(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        RayOptions.from_json(options)
