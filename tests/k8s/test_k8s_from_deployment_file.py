"""`scorehost k8s -f deployment.yml` as users run it on Azure ML's Kubernetes samples: every object validated
against Kubernetes' schemas (strict), the file's settings checked field by field, flags winning over the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from _kubernetes_samples import write_project

SCOREHOST = Path(sys.executable).parent / "scorehost"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0", kubernetes_validate.latest_version())
IMAGE = "registry.example.com/model-1:3"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_project(tmp_path)


def k8s(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCOREHOST), "k8s", *args], capture_output=True, text=True, timeout=60)


def rendered(*args: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The objects by kind, and the warning lines on stderr."""
    done = k8s(*args)
    assert done.returncode == 0, done.stderr
    documents = [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]
    for document in documents:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)
    warnings = done.stderr.splitlines()
    assert all(line.startswith("warning: ") for line in warnings), done.stderr
    return {document["kind"]: document for document in documents}, warnings


def container_of(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [container] = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


def option(container: dict[str, Any], flag: str) -> str:
    args: list[str] = container["args"]
    return args[args.index(flag) + 1]


def test_the_blue_sample_fixed_size_with_its_resources_and_timeout(files: dict[str, Path]) -> None:
    objects, warnings = rendered("-f", str(files["blue"]), "--image", IMAGE)
    assert {document["metadata"]["name"] for document in objects.values()} == {"blue"}
    assert objects["Deployment"]["spec"]["replicas"] == 1
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 1)  # scale_settings default: instance_count, fixed
    container = container_of(objects)
    # where Azure ML mounts the code folder: /var/azureml-app/<its name>/<scoring_script>
    assert container["args"][:2] == ["serve", "/var/azureml-app/onlinescoring/score.py"]
    assert option(container, "--timeout") == "3"  # request_timeout_ms 3000
    assert container["resources"] == {
        "requests": {"cpu": "0.1", "memory": "0.1Gi"},
        "limits": {"memory": "200Mi", "cpu": "0.2"},
    }
    assert "env" not in container
    # no probes in the file: scorehost's own timing
    default_readiness = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5, "failureThreshold": 2}
    assert container["readinessProbe"] == default_readiness
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    # max_queue_wait_ms 3000: sent away (429) after 3 s in line, spare threads holding the waiting requests
    assert container["args"][-4:] == ["--max-queue-wait", "3", "--spare-threads", "4"]
    assert any("environment is not built: the pods run --image" in line for line in warnings)


def test_the_green_sample_autoscales_on_cpu(files: dict[str, Path]) -> None:
    objects, warnings = rendered("-f", str(files["green"]), "--image", IMAGE)
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert objects["Deployment"]["spec"]["replicas"] == 1
    container = container_of(objects)
    assert container["args"][1] == "/var/azureml-app/onlinescoring/score.py"
    assert "--timeout" not in container["args"]  # no request_settings: serve's default
    # no limits in the file: memory limited at its request, CPU not limited (as without -f)
    assert container["resources"] == {"requests": {"cpu": "0.1", "memory": "0.1Gi"}, "limits": {"memory": "0.1Gi"}}
    text = "\n".join(warnings)
    for expected in ("polling_interval is not used", "app_insights_enabled", "instance_type"):
        assert expected in text


def test_probes_variables_and_a_gpu(files: dict[str, Path]) -> None:
    objects, warnings = rendered("-f", str(files["probes"]), "--image", IMAGE)
    assert objects["Service"]["metadata"]["name"] == "blue-gpu"  # the deployment's name, lower-cased
    assert objects["Deployment"]["spec"]["replicas"] == 2
    container = container_of(objects)
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "initialDelaySeconds": 7,
        "periodSeconds": 3,
        "timeoutSeconds": 4,
        "successThreshold": 2,
        "failureThreshold": 6,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/live", "port": "http"},
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
        "timeoutSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 1,
    }
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"  # init() still gets --init-timeout
    assert container["env"] == [{"name": "WORKER_THREADS", "value": "4"}, {"name": "MODEL_FLAVOR", "value": "small"}]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"},
    }
    assert option(container, "--devices") == "auto"
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert any("max_concurrent_requests_per_instance is not used" in line for line in warnings)


def test_a_gpu_vm_size_gives_its_gpus_and_flags_win(files: dict[str, Path]) -> None:
    sized = ["--set", "instance_type=Standard_NC24s_v3"]
    objects, warnings = rendered("-f", str(files["blue"]), "--image", IMAGE, *sized)
    container = container_of(objects)
    assert container["resources"]["limits"] == {"memory": "200Mi", "cpu": "0.2", "nvidia.com/gpu": "4"}
    assert option(container, "--devices") == "auto"
    assert not any("instance_type" in line for line in warnings)  # used, so not listed as ignored
    # resources' GPUs win over the size's; --gpus over both, and --gpus 0 makes a CPU pod
    gpu_resource = ["--set", "resources.limits.gpu=1", *sized]
    objects, _ = rendered("-f", str(files["blue"]), "--image", IMAGE, *gpu_resource)
    assert container_of(objects)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    objects, _ = rendered("-f", str(files["blue"]), "--image", IMAGE, *sized, "--gpus", "2")
    assert container_of(objects)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    objects, _ = rendered("-f", str(files["blue"]), "--image", IMAGE, *sized, "--gpus", "0")
    assert "nvidia.com/gpu" not in container_of(objects)["resources"]["limits"]
    assert "tolerations" not in objects["Deployment"]["spec"]["template"]["spec"]
    objects, _ = rendered("-f", str(files["blue"]), "--image", IMAGE, *sized, "--gpu-node-selector", "none")
    assert "nodeSelector" not in objects["Deployment"]["spec"]["template"]["spec"]


def test_a_share_of_a_gpu_is_refused_naming_the_fix(files: dict[str, Path]) -> None:
    done = k8s("-f", str(files["blue"]), "--image", IMAGE, "--set", "resources.requests.gpu=0.5")
    assert done.returncode == 1
    assert "(--set resources.requests.gpu): 0.5 GPU: a pod gets whole GPUs on Kubernetes" in done.stderr
    assert "MIG or the device plugin's time-slicing" in done.stderr


def test_a_liveness_success_threshold_other_than_one_becomes_one(files: dict[str, Path]) -> None:
    overrides = ["--set", "liveness_probe.success_threshold=3"]
    objects, warnings = rendered("-f", str(files["probes"]), *overrides, "--image", IMAGE)
    assert container_of(objects)["livenessProbe"]["successThreshold"] == 1  # the API server refuses any other
    assert any("liveness_probe.success_threshold is 1 on Kubernetes" in line for line in warnings)


def test_flags_given_win_over_the_file(files: dict[str, Path]) -> None:
    flags = ["--name", "mine", "--min-replicas", "2", "--max-replicas", "5", "--cpu-target", "50"]
    flags += ["--cpu", "150m", "--memory", "512Mi", "--timeout", "9", "--replicas", "4"]
    objects, _ = rendered("-f", str(files["green"]), "/app/other.py", "--image", IMAGE, *flags)
    assert objects["Deployment"]["metadata"]["name"] == "mine"
    assert objects["Deployment"]["spec"]["replicas"] == 4
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    container = container_of(objects)
    assert container["args"][1] == "/app/other.py"  # an explicit SCRIPT wins
    assert option(container, "--timeout") == "9"
    # --memory is request and limit
    assert container["resources"] == {"requests": {"cpu": "150m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}


def test_defaults_do_not_hide_the_file_and_set_changes_it(files: dict[str, Path]) -> None:
    """Values equal to the flags' defaults, written out, still win; absent flags leave the file's values."""
    objects, _ = rendered("-f", str(files["blue"]), "--image", IMAGE, "--set", "instance_count=3")
    assert objects["Deployment"]["spec"]["replicas"] == 3
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 3)
    done = k8s("-f", str(files["blue"]), "--image", IMAGE, "--cpu", "1")  # the default, given: above the limit 0.2
    assert done.returncode == 2
    assert "the CPU request 1 is above its limit 0.2" in done.stderr


@pytest.mark.parametrize(
    ("written", "changed", "message"),
    [
        ('cpu: "0.1"', 'cpu: "lots"', "line 18: 'lots' is not a Kubernetes quantity"),
        ('"200Mi"', '"50Mi"', "line 22: resources.requests.memory 0.1Gi is above resources.limits.memory 50Mi"),
        ("scoring_script: score.py", "scoring_script: missing.py", "line 9: the scoring script"),
        ("request_timeout_ms:", "request_timeout:", "line 14: request_settings.request_timeout"),
        ("name: blue", "name: blue_1", "line 2: "),
    ],
)
def test_a_bad_file_exits_1_naming_the_file_and_line(
    files: dict[str, Path], written: str, changed: str, message: str
) -> None:
    files["blue"].write_text(files["blue"].read_text().replace(written, changed))
    done = k8s("-f", str(files["blue"]), "--image", IMAGE)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert "Error: " in done.stderr
    assert f"{files['blue']}, {message}" in done.stderr


def test_a_bad_override_or_a_missing_file_exits_1(files: dict[str, Path]) -> None:
    done = k8s("-f", str(files["blue"]), "--image", IMAGE, "--set", "resources.limits.cpu=0.05")
    assert done.returncode == 1
    assert "(--set resources.limits.cpu): resources.requests.cpu 0.1 is above resources.limits.cpu 0.05" in done.stderr
    assert "Traceback" not in done.stderr
    missing = k8s("-f", str(files["blue"].with_name("nope.yml")), "--image", IMAGE)
    assert missing.returncode == 1
    assert "no such file" in missing.stderr


def test_script_or_file_is_needed_and_set_needs_a_file() -> None:
    done = k8s("--image", IMAGE)
    assert done.returncode == 2
    assert "give SCRIPT" in done.stderr
    done = k8s("/app/score.py", "--image", IMAGE, "--set", "instance_count=2")
    assert done.returncode == 2
    assert "--set changes the fields of a -f file" in done.stderr


def test_help_says_where_azure_ml_mounts_the_code() -> None:
    done = k8s("--help")
    assert "/var/azureml-app/<code folder's name>/<scoring_script>" in " ".join(done.stdout.split())


def test_a_data_collector_is_not_rendered_and_says_so(files: dict[str, Path]) -> None:
    changes = ["--set", "data_collector.collections.model_inputs.enabled=True"]
    _, warnings = rendered("-f", str(files["blue"]), "--image", IMAGE, *changes)
    assert any("data_collector is not rendered" in line for line in warnings)


def test_a_deployment_without_a_scoring_script_is_refused_naming_the_fix(files: dict[str, Path]) -> None:
    text = files["blue"].read_text()
    start = text.index("code_configuration:")
    end = text.index("scoring_script: score.py") + len("scoring_script: score.py\n")
    model = files["blue"].parent.parent / "model-1" / "model"
    (model / "MLmodel").write_text("flavors:\n  python_function: {loader_module: mlflow.sklearn}\n")
    files["blue"].write_text(text[:start] + text[end:])
    done = k8s("-f", str(files["blue"]), "--image", IMAGE)
    assert done.returncode == 1, done.stdout
    assert "add code_configuration with a score.py" in done.stderr
