"""Plain Kubernetes objects for `scorehost serve` in a user's image: a Deployment, its Service, a
HorizontalPodAutoscaler and a PodDisruptionBudget (`scorehost k8s`).

The probes use the server's own routes: readiness `GET /ready` (200 only once `init()` has finished),
liveness `GET /live` (answered while `init()` runs, so a slow model is never killed as dead), and a startup
probe on `/ready` patient enough for `--init-timeout`. Updates replace one pod at a time and never take a
ready one away first (`maxUnavailable: 0`); SIGTERM lets in-flight requests finish within the grace period.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["KubernetesApp", "check_name"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # an RFC 1123 label: what a Service may be named
CONTAINER_PORT = 5001
_STARTUP_PERIOD_S = 5


def check_name(name: str) -> str:
    """`name` if Kubernetes accepts it for every object here, else ValueError naming the rule."""
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid Kubernetes name: lowercase letters, digits and '-', starting and ending with "
            "a letter or digit, at most 63 characters"
        )
    return name


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
        if self.model_dir is not None:
            args += ["--model-dir", self.model_dir]
        args += list(self.extra_args)
        http = {"port": "http"}
        container: dict[str, Any] = {
            "name": "scorehost",
            "image": self.image,
            "command": ["scorehost"],
            "args": args,
            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/ready", **http}, "periodSeconds": 5, "failureThreshold": 2},
            "livenessProbe": {
                "httpGet": {"path": "/live", **http},
                "periodSeconds": 10,
                "timeoutSeconds": 5,
                "failureThreshold": 6,
            },
            "startupProbe": {
                "httpGet": {"path": "/ready", **http},
                "periodSeconds": _STARTUP_PERIOD_S,
                "failureThreshold": math.ceil(self.init_timeout_s / _STARTUP_PERIOD_S) + 1,
            },
            "resources": {
                "requests": {"cpu": self.cpu, "memory": self.memory},
                "limits": {"memory": self.memory},  # no CPU limit: throttling would only add latency
            },
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
        if self.model_claim is not None:
            container["volumeMounts"] = [{"name": "models", "mountPath": self.model_dir, "readOnly": True}]
        return container

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
