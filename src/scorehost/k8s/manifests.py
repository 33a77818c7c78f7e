"""Plain Kubernetes objects for `scorehost serve` in a user's image: a Deployment, its Service, a
HorizontalPodAutoscaler and a PodDisruptionBudget (`scorehost k8s`).

The probes use the server's own routes: readiness `GET /ready` (200 only once `init()` has finished),
liveness `GET /live` (answered while `init()` runs, so a slow model is never killed as dead), and a startup
probe on `/ready` patient enough for `--init-timeout`. Updates replace one pod at a time and never take a
ready one away first (`maxUnavailable: 0`); SIGTERM lets in-flight requests finish within the grace period.

GPU pods (`gpus`) ask for whole `nvidia.com/gpu` devices (the device plugin's resource), go to nodes labelled as GPU
nodes (`gpu_node_selector`), tolerate the taints GPU node pools carry, and spread their workers over their GPUs
(`serve --devices auto`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["GPU_NODE_SELECTOR", "GPU_TOLERATIONS", "KubernetesApp", "ProbeTiming", "check_name", "parse_quantity"]

# The label NVIDIA GPU feature discovery (part of the GPU operator) puts on every node with a working GPU
GPU_NODE_SELECTOR: Mapping[str, str] = {"nvidia.com/gpu.present": "true"}
# The taints GPU node pools carry so that only pods asking for GPUs land there: nvidia.com/gpu (GKE sets it, and EKS
# and GPU operator guides use it) and sku=gpu (AKS's documented one). A toleration only permits: harmless elsewhere.
GPU_TOLERATIONS: tuple[Mapping[str, str], ...] = (
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
)
# A label's key (an optional DNS-subdomain prefix and '/', then a name) and value, as the API server checks them
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # an RFC 1123 label: what a Service may be named
CONTAINER_PORT = 5001
_STARTUP_PERIOD_S = 5
_READINESS = {"periodSeconds": 5, "failureThreshold": 2}
_LIVENESS = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6}
# Kubernetes' resource.Quantity: a decimal number, then a binary (Ki..Ei) or decimal (n..E) suffix or an exponent
_QUANTITY = re.compile(
    r"^\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
)
_SUFFIXES = {
    **{f"{letter}i": Decimal(1024) ** (power + 1) for power, letter in enumerate("KMGTPE")},
    **{letter: Decimal(1000) ** (power + 1) for power, letter in enumerate("kMGTPE")},
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
}


def check_name(name: str) -> str:
    """`name` if Kubernetes accepts it for every object here, else ValueError naming the rule."""
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid Kubernetes name: lowercase letters, digits and '-', starting and ending with "
            "a letter or digit, at most 63 characters"
        )
    return name


def parse_quantity(quantity: str) -> Decimal:
    """A Kubernetes quantity (`500m`, `0.1`, `200Mi`, `1e3`) as a number, else ValueError naming the forms."""
    found = _QUANTITY.match(quantity.strip())
    if not found:
        raise ValueError(
            f"{quantity!r} is not a Kubernetes quantity: a number, optionally followed by m (thousandths), "
            "k/M/G/T/P/E or Ki/Mi/Gi/Ti/Pi/Ei, e.g. 500m, 0.5, 2, 512Mi, 1Gi"
        )
    suffix = found["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(found["number"]) * Decimal(10) ** int(suffix[1:])
    return Decimal(found["number"]) * _SUFFIXES[suffix]


@dataclass(frozen=True)
class ProbeTiming:
    """When a probe runs and how many results change its verdict (the kubelet's fields, in seconds)."""

    initial_delay_s: int = 0
    period_s: int = 10
    timeout_s: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    def fields(self) -> dict[str, int]:
        return {
            "initialDelaySeconds": self.initial_delay_s,
            "periodSeconds": self.period_s,
            "timeoutSeconds": self.timeout_s,
            "successThreshold": self.success_threshold,
            "failureThreshold": self.failure_threshold,
        }


@dataclass(frozen=True)
class KubernetesApp:
    """What the manifests describe; `script` and `model_dir` are paths inside the image."""

    name: str
    image: str
    script: str
    model_dir: str | None = None
    model_claim: str | None = None  # a PersistentVolumeClaim mounted read-only at model_dir
    namespace: str | None = None
    replicas: int = 2
    min_replicas: int = 2
    max_replicas: int = 10
    cpu_target_percent: int = 70
    workers: int = 1
    cpu: str = "1"
    memory: str = "1Gi"
    cpu_limit: str | None = None  # none by default: CFS throttling would only add latency
    memory_limit: str | None = None  # None: the same as `memory`
    gpus: int = 0  # nvidia.com/gpu per pod
    gpu_node_selector: Mapping[str, str] = field(default_factory=lambda: dict(GPU_NODE_SELECTOR))  # {}: none
    env: Mapping[str, str] = field(default_factory=dict)
    readiness: ProbeTiming | None = None  # None: scorehost's own timing
    liveness: ProbeTiming | None = None
    timeout_s: float | None = None  # serve --timeout; None: serve's default
    service_port: int = 80
    init_timeout_s: float = 600.0
    graceful_timeout_s: float = 30.0
    extra_args: tuple[str, ...] = ()  # further `scorehost serve` flags

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.model_claim is not None and self.model_dir is None:
            raise ValueError("a model volume claim needs --model-dir: the path it is mounted at")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("replicas must satisfy 1 <= min <= max")
        if not 0 <= self.gpus <= 1024:
            raise ValueError(f"GPUs per pod must be between 0 and 1024, not {self.gpus}")
        for key, value in self.gpu_node_selector.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise ValueError(
                    f"{key}={value} is not a node label: a key (an optional prefix such as nvidia.com/, then up to 63 "
                    "letters, digits, '-', '_' or '.') and a value of up to 63 of those"
                )
        if self.liveness is not None and self.liveness.success_threshold != 1:
            raise ValueError("a liveness probe's success threshold must be 1 (Kubernetes refuses any other)")
        for what, request, limit in (
            ("CPU", self.cpu, self.cpu_limit),
            ("memory", self.memory, self.memory_limit or self.memory),
        ):
            asked = parse_quantity(request)  # a malformed one is refused here, not by kubectl apply
            if limit is not None and asked > parse_quantity(limit):
                raise ValueError(f"the {what} request {request} is above its limit {limit}: Kubernetes refuses it")

    def manifests(self) -> list[dict[str, Any]]:
        """Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget, in the order to apply them."""
        return [self.deployment(), self.service(), self.autoscaler(), self.disruption_budget()]

    # --- the objects ------------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "labels": self._labels()}
        if self.namespace is not None:
            metadata["namespace"] = self.namespace
        return metadata

    def _labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/managed-by": "scorehost"}

    def _selector(self) -> dict[str, Any]:
        return {"matchLabels": {"app.kubernetes.io/name": self.name}}

    def deployment(self) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self._metadata(),
            "spec": {
                "replicas": self.replicas,
                "selector": self._selector(),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {"metadata": {"labels": self._labels()}, "spec": self._pod()},
            },
        }

    def _pod(self) -> dict[str, Any]:
        pod: dict[str, Any] = {
            # serve finishes in-flight requests within --graceful-timeout after SIGTERM; then a margin
            "terminationGracePeriodSeconds": math.ceil(self.graceful_timeout_s) + 5,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [self._container()],
        }
        if self.gpus:
            if self.gpu_node_selector:
                pod["nodeSelector"] = dict(self.gpu_node_selector)
            pod["tolerations"] = [dict(toleration) for toleration in GPU_TOLERATIONS]
        if self.model_claim is not None:
            pod["volumes"] = [
                {"name": "models", "persistentVolumeClaim": {"claimName": self.model_claim, "readOnly": True}}
            ]
        return pod

    def _container(self) -> dict[str, Any]:
        # 0.0.0.0: inside a pod the Service and the kubelet's probes come from outside the container
        args = ["serve", self.script, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
        args += ["--workers", str(self.workers), "--init-timeout", f"{self.init_timeout_s:g}"]
        args += ["--graceful-timeout", f"{self.graceful_timeout_s:g}"]
        if self.timeout_s is not None:
            args += ["--timeout", f"{self.timeout_s:g}"]
        if self.model_dir is not None:
            args += ["--model-dir", self.model_dir]
        if self.gpus:
            args += ["--devices", "auto"]  # the workers spread over the pod's GPUs
        args += list(self.extra_args)
        http = {"port": "http"}
        container: dict[str, Any] = {
            "name": "scorehost",
            "image": self.image,
            "command": ["scorehost"],
            "args": args,
            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/ready", **http}, **self._timing(self.readiness, _READINESS)},
            "livenessProbe": {"httpGet": {"path": "/live", **http}, **self._timing(self.liveness, _LIVENESS)},
            "startupProbe": {
                "httpGet": {"path": "/ready", **http},
                "periodSeconds": _STARTUP_PERIOD_S,
                "failureThreshold": math.ceil(self.init_timeout_s / _STARTUP_PERIOD_S) + 1,
            },
            "resources": self._resources(),
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
        if self.env:
            container["env"] = [{"name": name, "value": value} for name, value in self.env.items()]
        if self.model_claim is not None:
            container["volumeMounts"] = [{"name": "models", "mountPath": self.model_dir, "readOnly": True}]
        return container

    @staticmethod
    def _timing(timing: ProbeTiming | None, default: dict[str, int]) -> dict[str, int]:
        return default if timing is None else timing.fields()

    def _resources(self) -> dict[str, Any]:
        # Memory is limited (a leak is killed, not the node's neighbours); CPU only when asked (see cpu_limit).
        limits: dict[str, str] = {"memory": self.memory_limit or self.memory}
        if self.cpu_limit is not None:
            limits["cpu"] = self.cpu_limit
        if self.gpus:
            limits["nvidia.com/gpu"] = str(self.gpus)  # an extended resource: its request defaults to the limit
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": limits}

    def service(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._metadata(),
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": self.name},
                "ports": [{"name": "http", "port": self.service_port, "targetPort": "http", "protocol": "TCP"}],
            },
        }

    def autoscaler(self) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": self._metadata(),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.name},
                "minReplicas": self.min_replicas,
                "maxReplicas": self.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": self.cpu_target_percent},
                        },
                    }
                ],
            },
        }

    def disruption_budget(self) -> dict[str, Any]:
        # Voluntary disruptions (node drains) take one pod at a time. maxUnavailable rather than minAvailable: with
        # one replica, minAvailable: 1 would block every drain forever.
        return {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self._metadata(),
            "spec": {"selector": self._selector(), "maxUnavailable": 1},
        }
