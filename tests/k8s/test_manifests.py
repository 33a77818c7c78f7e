"""`scorehost k8s` as users run it, its output validated offline against Kubernetes' own schemas (strict: an
unknown or misspelt field fails), and what the objects promise checked field by field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scorehost.k8s.manifests import KubernetesApp

SCOREHOST = Path(sys.executable).parent / "scorehost"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0", kubernetes_validate.latest_version())


def k8s(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCOREHOST), "k8s", *args], capture_output=True, text=True, timeout=60)


def rendered(*args: str) -> dict[str, dict[str, Any]]:
    done = k8s(*args)
    assert done.returncode == 0, done.stderr
    documents = [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]
    for document in documents:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)
    return {document["kind"]: document for document in documents}


def test_the_four_objects_are_valid_and_wired_together() -> None:
    objects = rendered("/app/score.py", "--image", "registry.example.com/mnist:3", "--name", "mnist")
    assert list(objects) == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    deployment, service = objects["Deployment"], objects["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"] == deployment["spec"]["selector"]
    assert objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "mnist"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["scorehost"]
    assert container["args"][:6] == ["serve", "/app/score.py", "--host", "0.0.0.0", "--port", "5001"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_probes_rollout_and_shutdown_follow_the_server() -> None:
    objects = rendered("/app/score.py", "--image", "x:1", "--init-timeout", "900", "--graceful-timeout", "20")
    spec = objects["Deployment"]["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}  # never fewer ready pods
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 25  # serve's graceful timeout, and a margin
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"  # 200 only after init()
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"  # answered while init() runs
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] > 900  # patient enough for --init-timeout
    assert "--init-timeout" in container["args"]
    assert container["args"][container["args"].index("--init-timeout") + 1] == "900"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_model_volume_namespace_and_autoscaling() -> None:
    objects = rendered(
        "/app/score.py",
        "--image",
        "x:1",
        "--model-dir",
        "/models/mnist",
        "--model-claim",
        "mnist-models",
        "--namespace",
        "ml",
        "--min-replicas",
        "3",
        "--max-replicas",
        "7",
        "--cpu-target",
        "60",
    )
    assert {document["metadata"]["namespace"] for document in objects.values()} == {"ml"}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "models", "persistentVolumeClaim": {"claimName": "mnist-models", "readOnly": True}}
    ]
    [container] = pod["containers"]
    assert container["volumeMounts"] == [{"name": "models", "mountPath": "/models/mnist", "readOnly": True}]
    assert container["args"][-2:] == ["--model-dir", "/models/mnist"]
    assert objects["Deployment"]["spec"]["replicas"] == 3  # at least the autoscaler's floor
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_a_misspelt_field_would_be_caught() -> None:
    """The validation above is not vacuous: the same strict check refuses a typo."""
    [_, _, hpa, _] = KubernetesApp(name="m", image="x:1", script="/app/score.py").manifests()
    target = hpa["spec"]["metrics"][0]["resource"]["target"]
    target["averageUtilisation"] = target.pop("averageUtilization")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Not_Valid"], "is not a valid Kubernetes name"),
        (["--model-claim", "c"], "needs --model-dir"),
        (["--min-replicas", "5", "--max-replicas", "2"], "--min-replicas must not exceed --max-replicas"),
        ([], "Missing option '--image'"),
        (["--gpu-node-selector", "pool=gpu"], "--gpu-node-selector places GPU pods: give --gpus N"),
        (["--gpus", "1", "--gpu-node-selector", "pool"], "'pool' is not KEY=VALUE"),
        (["--gpus", "1", "--gpu-node-selector", "none", "--gpu-node-selector", "a=b"], "give no labels beside it"),
        (["--gpus", "1", "--gpu-node-selector", "pool=a b"], "pool=a b is not a node label"),
        (["--gpus", "0.5"], "'0.5' is not a valid integer"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(args: list[str], message: str) -> None:
    image = [] if not args else ["--image", "x:1"]
    done = k8s("/app/score.py", *image, *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_default_name_comes_from_the_scripts_folder() -> None:
    assert rendered("/srv/mnist_model/score.py", "--image", "x:1")["Service"]["metadata"]["name"] == "mnist-model"
    assert rendered("score.py", "--image", "x:1")["Service"]["metadata"]["name"] == "score"


def test_a_gpu_pod_asks_for_whole_gpus_on_gpu_nodes() -> None:
    objects = rendered("/app/score.py", "--image", "x:1", "--gpus", "2", "--workers", "4")
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    # an extended resource: its request is its limit (Kubernetes refuses a different one)
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": "2"},
    }
    assert container["args"][container["args"].index("--devices") + 1] == "auto"  # the 4 workers over the 2 GPUs
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}  # GPU feature discovery's label
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    ]
    cpu_pod = rendered("/app/score.py", "--image", "x:1")["Deployment"]["spec"]["template"]["spec"]
    assert not {"nodeSelector", "tolerations"} & set(cpu_pod)
    assert "--devices" not in cpu_pod["containers"][0]["args"]


def test_the_gpu_node_selector_replaced_or_dropped() -> None:
    pool = ["--gpu-node-selector", "agentpool=gpu", "--gpu-node-selector", "accelerator=nvidia"]
    pod = rendered("/app/score.py", "--image", "x:1", "--gpus", "1", *pool)["Deployment"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"agentpool": "gpu", "accelerator": "nvidia"}
    none = ["--gpu-node-selector", "none"]
    pod = rendered("/app/score.py", "--image", "x:1", "--gpus", "1", *none)["Deployment"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod  # the nvidia.com/gpu limit alone places it
    assert len(pod["tolerations"]) == 2
