"""A Ray Serve config file for one entry script: what `serve run` (VMs) and a KubeRay RayService's
`serveConfigV2` (Kubernetes) take. Rendering needs no Ray; deploying it needs `scorehost[ray]` on every node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from scorehost.ray.autoscaling import DOWNSCALE_DELAY_S, UPSCALE_DELAY_S, autoscaling_config
from scorehost.ray.serve_app import DEPLOYMENT_NAME

__all__ = ["HIGH_THROUGHPUT_ENVIRONMENT", "ServeConfig", "cpu_count"]

IMPORT_PATH = "scorehost.ray.serve_app:app_builder"
# Serve's HAProxy ingress and throughput-optimized replicas: ~10x the requests/s of its default Python proxy on
# two cores (docs/ray.md). Ray reads them from the environment of `ray start` on every node, and of the driver.
HIGH_THROUGHPUT_ENVIRONMENT = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def cpu_count(quantity: str) -> float:
    """A Kubernetes CPU amount as Ray counts CPUs: `500m` -> 0.5, `2` -> 2.0; ValueError names the forms."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m?)\s*", quantity)
    if not found:
        raise ValueError(f"{quantity!r} is not a CPU amount: a number of CPUs (0.5, 2) or of thousandths (500m)")
    return float(found[1]) / (1000 if found[2] else 1)


@dataclass(frozen=True)
class ServeConfig:
    """One application serving `entry_script` (relative to `working_dir` when one is shipped)."""

    entry_script: str
    app_options: Mapping[str, Any] = field(default_factory=dict)  # ServeSettings fields: model_dir, timeout, ...
    name: str = "score"
    route_prefix: str = "/"
    # A remote URI (s3://.../code.zip) or local://PATH present on every node. A folder on this machine is not
    # allowed in a config file: `serve run --working-dir DIR` uploads it.
    working_dir_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    proxy_location: str = "EveryNode"
    replicas: int | None = None
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = UPSCALE_DELAY_S
    downscale_delay_s: float = DOWNSCALE_DELAY_S
    max_ongoing_requests: int = 8
    max_queued_requests: int = 64
    request_timeout_s: float = 60.0
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    env_vars: Mapping[str, str] = field(default_factory=dict)  # the application's runtime_env
    health_check_period_s: float = 10.0
    graceful_shutdown_timeout_s: float = 20.0

    def deployment_options(self) -> dict[str, Any]:
        """The Serve options of the one deployment, as the config file's `deployments` entry names them."""
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "health_check_period_s": self.health_check_period_s,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "ray_actor_options": {"num_cpus": self.num_cpus},
        }
        if self.num_gpus:
            options["ray_actor_options"]["num_gpus"] = self.num_gpus
        if self.replicas is not None:
            options["num_replicas"] = self.replicas
        else:
            options["autoscaling_config"] = autoscaling_config(
                self.min_replicas,
                self.max_replicas,
                self.target_ongoing_requests,
                self.upscale_delay_s,
                self.downscale_delay_s,
            )
        return options

    def to_dict(self) -> dict[str, Any]:
        """The config file's content."""
        application: dict[str, Any] = {
            "name": self.name,
            "route_prefix": self.route_prefix,
            "import_path": IMPORT_PATH,
            "args": {"entry_script": str(PurePosixPath(self.entry_script)), **self.app_options},
            "deployments": [self.deployment_options()],
        }
        runtime_env: dict[str, Any] = {}
        if self.working_dir_uri is not None:
            runtime_env["working_dir"] = self.working_dir_uri
        if self.env_vars:
            runtime_env["env_vars"] = dict(self.env_vars)
        if runtime_env:
            application["runtime_env"] = runtime_env
        return {
            "proxy_location": self.proxy_location,
            "http_options": {"host": self.host, "port": self.port, "request_timeout_s": self.request_timeout_s},
            "applications": [application],
        }
