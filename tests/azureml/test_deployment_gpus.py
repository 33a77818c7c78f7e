"""A deployment YAML's GPUs (`instance_type` a GPU VM size, or `resources` nvidia.com/gpu or gpu): what the reader
finds, the warning about ignored fields, and what `deployments create -f` asks for on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from _azureml_samples import DEPLOYMENT_HEAD as HEAD
from _azureml_samples import OnlineSamples

from scorehost.azureml.apply import deployment_request
from scorehost.azureml.deployment import DeploymentFile, read_deployment_file
from scorehost.deploy.spec import DeploymentSpec, RayOptions, check_serve_options
from scorehost.errors import ProjectFileError


def _read(online: OnlineSamples, body: str, overrides: tuple[str, ...] = ()) -> DeploymentFile:
    return read_deployment_file(online.write("d.yml", HEAD + body), overrides)


def _ignored(deployment: DeploymentFile) -> str:
    return "\n".join(warning for warning in deployment.warnings if "ignored" in warning)


@pytest.mark.parametrize(
    ("body", "gpus"),
    [
        ("instance_type: Standard_NC24ads_A100_v4\n", 1.0),
        ("instance_type: standard_nc12s_v3\n", 2.0),
        ("instance_type: Standard_DS3_v2\n", 0.0),
        ("instance_type: defaultinstancetype\n", 0.0),
        ('resources:\n  requests:\n    nvidia.com/gpu: "2"\n', 2.0),
        ("resources:\n  limits:\n    gpu: 1\n", 1.0),
        ('resources:\n  requests:\n    gpu: "0.5"\n', 0.5),  # a share of one GPU, as Ray places it
        ('resources:\n  requests:\n    gpu: "250m"\n', 0.25),
        # resources win over the VM size, a request over a limit (as for CPUs)
        ('instance_type: Standard_NC24s_v3\nresources:\n  requests:\n    gpu: "1"\n', 1.0),
        ('resources:\n  requests:\n    gpu: "1"\n  limits:\n    gpu: "2"\n', 1.0),
        ("", 0.0),
    ],
)
def test_gpus_per_instance(online: OnlineSamples, body: str, gpus: float) -> None:
    assert _read(online, body).gpus == gpus


def test_a_gpu_size_is_used_and_not_listed_as_ignored(online: OnlineSamples) -> None:
    used = _read(online, "instance_type: Standard_NC6s_v3\negress_public_network_access: disabled\n")
    assert "egress_public_network_access" in _ignored(used)
    assert "instance_type" not in _ignored(used)
    for size in ("Standard_DS3_v2", "onprem-gpu"):  # a CPU size, or a name that says nothing here
        assert "instance_type (an Azure VM size; instances run on this machine)" in _ignored(
            _read(online, f"instance_type: {size}\n")
        )


def test_instance_type_from_set(online: OnlineSamples) -> None:
    assert _read(online, "instance_type: Standard_DS3_v2\n", ("instance_type=Standard_NC4as_T4_v3",)).gpus == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('resources:\n  requests:\n    gpu: "1.5"\n', "line 8: resources.requests.gpu 1.5 is not a GPU count"),
        ('resources:\n  limits:\n    nvidia.com/gpu: "2000"\n', "at most 1024"),
        ('resources:\n  requests:\n    gpu: "one"\n', "a number of GPUs (1, 2, or 0.5 to share one), not 'one'"),
    ],
)
def test_bad_gpu_counts_are_refused_with_their_line(online: OnlineSamples, body: str, message: str) -> None:
    with pytest.raises(ProjectFileError) as refused:
        _read(online, body)
    assert message in refused.value.message


def _spec(fields: dict[str, object], **more: object) -> DeploymentSpec:
    return DeploymentSpec(
        "my-endpoint",
        "blue",
        Path(str(fields["script"])),
        Path(str(fields["code_dir"])),
        serve_options=check_serve_options(fields["serve_options"]),
        **more,  # type: ignore[arg-type]
    )


def test_locally_the_workers_spread_over_the_gpus(online: OnlineSamples, tmp_path: Path) -> None:
    request = deployment_request(_read(online, "instance_type: Standard_NC12s_v3\n"), tmp_path / "home")
    assert request.gpus == 2
    assert request.fields["serve_options"] == {"devices": "auto"}
    assert _spec(request.fields).serve_options == {"devices": "auto"}  # what the control plane accepts
    assert not any("instance_type" in warning for warning in request.warnings)
    cpu_only = deployment_request(_read(online, "instance_type: Standard_DS3_v2\n"), tmp_path / "home")
    assert cpu_only.gpus == 0
    assert cpu_only.fields["serve_options"] == {}
    assert cpu_only.ray_options() == {}


def test_on_ray_the_gpus_are_reserved_per_replica(online: OnlineSamples, tmp_path: Path) -> None:
    request = deployment_request(_read(online, 'resources:\n  requests:\n    gpu: "0.5"\n'), tmp_path / "home")
    ray = request.ray_options()
    assert ray == {"num_gpus": 0.5}
    assert "devices" not in request.fields["serve_options"]  # Ray places the replicas on GPUs, not serve
    spec = _spec(request.fields, backend="ray", ray=RayOptions.from_json({"address": "head:6379", **ray}))
    assert spec.ray is not None
    assert spec.ray.num_gpus == 0.5
