"""Declarations of endpoints, deployments and traffic: accepted, or refused with the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorehost.deploy.spec import AuthMode, DeploymentSpec, EndpointSpec, Traffic, check_resource_name
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
