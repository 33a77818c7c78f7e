"""What users declare: endpoints, deployments and traffic, validated before anything starts.

The control plane stores these declarations and makes the running world match them; every check a
user's input needs happens here, once, with a message that names the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from scorehost.config import ServeSettings
from scorehost.errors import InvalidSpec
from scorehost.ray.autoscaling import DOWNSCALE_DELAY_S, UPSCALE_DELAY_S
from scorehost.registry.names import parse_ref

__all__ = [
    "BACKENDS",
    "OWNED_SERVE_OPTIONS",
    "AuthMode",
    "DeploymentSpec",
    "EndpointSpec",
    "RayOptions",
    "Traffic",
    "check_environment",
    "check_resource_name",
    "check_serve_options",
    "check_text_pairs",
    "serve_settings_of",
]

# Endpoint and deployment names appear in URLs, file names and process titles: Azure's own rule
# (3-32 characters, letters, digits and '-', starting with a letter, not ending with '-').
_RESOURCE = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{1,30}[A-Za-z0-9])")


def check_resource_name(kind: str, name: str) -> str:
    """`name` if it can name an endpoint or deployment, else InvalidSpec saying what is allowed."""
    if not _RESOURCE.fullmatch(name):
        raise InvalidSpec(
            f"{name!r} is not a valid {kind} name: use 3-32 letters, digits and '-', starting with a letter "
            "and not ending with '-'"
        )
    return name


class AuthMode(StrEnum):
    """How callers of an endpoint prove who they are."""

    KEY = "key"  # Authorization: Bearer <primary or secondary key>
    NONE = "none"


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """A stable scoring URI: `/endpoints/<name>/score` on the gateway."""

    name: str
    auth: AuthMode = AuthMode.KEY
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_resource_name("endpoint", self.name)
        check_text_pairs("tags", self.tags)
        try:
            object.__setattr__(self, "auth", AuthMode(self.auth))
        except ValueError:
            raise InvalidSpec(f"auth must be 'key' or 'none', not {self.auth!r}") from None


BACKENDS = ("local", "ray")  # what runs a deployment's instances: `scorehost serve` processes, or Ray Serve replicas
_ADDRESS = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}")


def _gpu_count(value: float) -> bool:
    # As Ray places them: fractions share one GPU (to 1/10000), more than one is whole GPUs
    return value == 0 or 0.0001 <= value <= 1 or (1 < value <= 1024 and float(value).is_integer())


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How a deployment runs on a Ray cluster: where the cluster is, and Serve's settings for its replicas."""

    address: str  # HOST:PORT of the cluster's head (its GCS), as `ray start --head` printed it
    ingress: str | None = None  # http://HOST:PORT where the gateway reaches Serve's ingress; default: the head's
    min_replicas: int | None = None  # with max_replicas: autoscaling on ongoing requests, else `instances` replicas
    max_replicas: int | None = None
    target_ongoing: float = 2.0  # ongoing requests per replica the autoscaler aims for
    upscale_delay_s: float = UPSCALE_DELAY_S  # how long the load must call for more replicas before Serve adds them
    downscale_delay_s: float = DOWNSCALE_DELAY_S  # ... for fewer, before Serve removes them
    max_ongoing: int = 8  # requests a replica takes at once; more wait in Serve's queue
    max_queued: int = 64  # requests waiting for a replica; beyond this, 503
    num_cpus: float = 1.0  # CPUs Ray reserves per replica
    num_gpus: float = 0.0  # GPUs Ray reserves per replica: a fraction below 1 shares one GPU, above 1 whole ones
    health_check_s: float = 10.0  # how often Serve asks each replica for its health
    graceful_shutdown_s: float = 20.0  # in-flight requests' time to finish when a replica stops
    model_store: str | None = None  # where the nodes see the workspace's model store; default: the same path
    # Deploy even though the cluster checks no tokens (anyone who reaches it can run code on it): a network you control
    insecure_cluster: bool = False

    def __post_init__(self) -> None:
        for name in ("address", "ingress", "model_store"):
            value = getattr(self, name)
            if not (isinstance(value, str) or (value is None and name != "address")):
                raise InvalidSpec(f"the Ray option {name} must be a string, not {type(value).__name__}")
        if not isinstance(self.insecure_cluster, bool):
            raise InvalidSpec(f"the Ray option insecure_cluster must be true or false, not {self.insecure_cluster!r}")
        if not _ADDRESS.fullmatch(self.address) or not 0 < int(self.address.rsplit(":", 1)[1]) < 65536:
            raise InvalidSpec(
                f"{self.address!r} is not a Ray cluster address: give HOST:PORT of its head (--ray-address)"
            )
        if self.ingress is not None and not re.fullmatch(r"https?://[^/\s]+", self.ingress.rstrip("/")):
            raise InvalidSpec(f"{self.ingress!r} is not an ingress URL: give http://HOST:PORT (--ray-ingress)")
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise InvalidSpec("autoscaling needs both --min-replicas and --max-replicas")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and not 1 <= self.min_replicas <= self.max_replicas <= 1024
        ):
            raise InvalidSpec(
                f"replicas must satisfy 1 <= min ({self.min_replicas}) <= max ({self.max_replicas}) <= 1024"
            )
        checks = [
            ("target_ongoing", self.target_ongoing > 0, "above 0"),
            ("upscale_delay_s", 0 <= self.upscale_delay_s <= 86_400, "between 0 and 86400 seconds"),
            ("downscale_delay_s", 0 <= self.downscale_delay_s <= 86_400, "between 0 and 86400 seconds"),
            ("max_ongoing", 1 <= self.max_ongoing <= 10_000, "between 1 and 10000"),
            ("max_queued", self.max_queued == -1 or 1 <= self.max_queued <= 1_000_000, "-1 (no limit) or 1 and up"),
            ("num_cpus", 0 <= self.num_cpus <= 1024, "between 0 and 1024"),
            ("num_gpus", _gpu_count(self.num_gpus), "0, a fraction of one GPU from 0.0001, or 1 to 1024 whole GPUs"),
            ("health_check_s", 0.1 <= self.health_check_s <= 3600, "between 0.1 and 3600"),
            ("graceful_shutdown_s", 0 <= self.graceful_shutdown_s <= 3600, "between 0 and 3600"),
        ]
        for name, good, allowed in checks:
            if not good:
                raise InvalidSpec(f"{name} must be {allowed}, not {getattr(self, name)}")

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RayOptions:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidSpec(f"unknown Ray options: {', '.join(sorted(unknown))}")
        if not isinstance(data.get("address"), str):
            raise InvalidSpec("the Ray backend needs the cluster's address: --ray-address HOST:PORT (or RAY_ADDRESS)")
        try:
            return cls(**data)
        except TypeError as error:
            raise InvalidSpec(f"bad Ray options: {error}") from None


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """One version of the scoring service behind an endpoint: a script, its code, its models, its size."""

    endpoint: str
    name: str
    script: Path  # the entry script, inside code_dir
    code_dir: Path
    models: tuple[str, ...] = ()  # registry references, laid out as AZUREML_MODEL_DIR
    instances: int = 1  # worker processes serving it
    environment: Mapping[str, str] = field(default_factory=dict)  # extra variables for the script
    serve_options: Mapping[str, Any] = field(default_factory=dict)  # `scorehost serve` settings (timeout, ...)
    backend: str = "local"  # one of BACKENDS
    ray: RayOptions | None = None  # the Ray backend's settings; required with it, refused without it
    # The Python environment its script runs in (an `environments.EnvironmentSpec`'s JSON); None: scorehost's own.
    python_environment: Mapping[str, Any] | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    # Azure ML settings kept as declared in a deployment YAML (probes, request and scale settings, resources,
    # data_collector, app_insights_enabled): the features that read them take them from here.
    azureml: Mapping[str, Any] = field(default_factory=dict)
    # Model labels (NAME:ALIAS, NAME:latest) it follows: when one moves, the control plane rolls it to that version.
    follow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidSpec(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if (self.backend == "ray") != (self.ray is not None):
            raise InvalidSpec(
                "the Ray backend needs the cluster's address (--ray-address)"
                if self.backend == "ray"
                else "Ray options (--ray-address, --min-replicas, ...) need --backend ray"
            )
        check_resource_name("endpoint", self.endpoint)
        check_resource_name("deployment", self.name)
        most = 1024 if self.backend == "ray" else 64  # processes on one machine, or replicas across a cluster
        if not 1 <= self.instances <= most:
            raise InvalidSpec(f"instances must be between 1 and {most}, not {self.instances}")
        for ref in (*self.models, *self.follow):
            parse_ref(ref)  # InvalidModelReference names the problem
        for ref in self.follow:
            if parse_ref(ref).version is not None:
                raise InvalidSpec(f"{ref} names one version: a deployment follows a label (NAME:ALIAS or NAME:latest)")
        code_dir = self.code_dir.expanduser().resolve()
        script = self.script if self.script.is_absolute() else code_dir / self.script
        script = script.resolve()
        if not script.is_relative_to(code_dir):
            raise InvalidSpec(f"the script {script} is outside the code folder {code_dir}; pass --code-dir")
        object.__setattr__(self, "code_dir", code_dir)
        object.__setattr__(self, "script", script)
        check_environment(self.environment)
        check_text_pairs("tags", self.tags)
        if not isinstance(self.description, str) or len(self.description) > 10_000:
            raise InvalidSpec("description must be text of at most 10000 characters")
        for name, value in (("python_environment", self.python_environment), ("azureml", self.azureml)):
            if value is not None and not isinstance(value, Mapping):
                raise InvalidSpec(f"{name} must be an object, not {type(value).__name__}")
        if self.serve_options.get("debug_errors") or self.environment.get("SCOREHOST_DEBUG_ERRORS", "").lower() in (
            "1",
            "true",
            "yes",
            "on",
        ):
            raise InvalidSpec(
                "debug_errors is for local development with `scorehost serve`: a deployment never sends what run() "
                "raised to its callers (`scorehost deployments logs` shows it, with the request id)"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "name": self.name,
            "script": str(self.script),
            "code_dir": str(self.code_dir),
            "models": list(self.models),
            "instances": self.instances,
            "environment": dict(self.environment),
            "serve_options": dict(self.serve_options),
            "backend": self.backend,
            "ray": self.ray.to_json() if self.ray is not None else None,
            "python_environment": dict(self.python_environment) if self.python_environment is not None else None,
            "description": self.description,
            "tags": dict(self.tags),
            "azureml": dict(self.azureml),
            "follow": list(self.follow),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        return cls(
            endpoint=data["endpoint"],
            name=data["name"],
            script=Path(data["script"]),
            code_dir=Path(data["code_dir"]),
            models=tuple(data.get("models", ())),
            instances=int(data.get("instances", 1)),
            environment={str(k): str(v) for k, v in (data.get("environment") or {}).items()},
            serve_options=dict(data.get("serve_options", {})),
            backend=str(data.get("backend") or "local"),
            ray=RayOptions.from_json(data["ray"]) if data.get("ray") else None,
            python_environment=data.get("python_environment"),
            description=str(data.get("description") or ""),
            tags=dict(data.get("tags") or {}),
            azureml=dict(data.get("azureml") or {}),
            follow=tuple(data.get("follow") or ()),
        )


def check_text_pairs(what: str, pairs: Any) -> None:
    """Tags: names to strings, or InvalidSpec."""
    if not isinstance(pairs, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
        raise InvalidSpec(f'{what} must map names to strings, like {{"team": "vision"}}')


def check_environment(environment: Mapping[str, Any]) -> None:
    """Every name a variable name and every value a string without NUL: refused here, not at the process's start."""
    for key, value in environment.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise InvalidSpec(f"environment: {key!r} is not an environment variable name")
        if not isinstance(value, str):
            raise InvalidSpec(f"environment: the value of {key} must be a string, not {type(value).__name__}")
        if "\0" in value:
            raise InvalidSpec(f"environment: the value of {key} holds a NUL character, which no variable can")


# `scorehost serve` settings that the control plane sets itself: where the server listens, its size, its script,
# models and workspace. A deployment changes them through its own fields (instances, models, script), never here.
# collect_dir, collect_source and collect_model_version follow from the deployment (deploy/collected.py).
OWNED_SERVE_OPTIONS = frozenset(
    {
        "collect_deployment_version",
        "collect_dir",
        "collect_model_version",
        "collect_source",
        "entry_script",
        "home",
        "host",
        "model_dir",
        "models",
        "port",
        "uds",
        "workers",
        "workers_per_device",
    }
)


class _Declared(ServeSettings):
    """ServeSettings from the given values alone: the control plane's own environment must not leak into checks."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def check_serve_options(options: Any, *, owned: bool = False) -> dict[str, Any]:
    """`options` (ServeSettings field names, `_` or `-`, to values) as `scorehost serve` would accept them, keys
    normalised to field names; InvalidSpec naming the option that is unknown, set by the control plane (unless
    `owned`: the control plane's own), or bad."""
    if not isinstance(options, Mapping):
        raise InvalidSpec('serve_options must be an object of `scorehost serve` settings, like {"timeout": 30}')
    known = set(ServeSettings.model_fields)
    given: dict[str, Any] = {}
    for key, value in options.items():
        name = key.replace("-", "_") if isinstance(key, str) else ""
        if name in OWNED_SERVE_OPTIONS and not owned:
            raise InvalidSpec(
                f"serve option {key!r} is set by the control plane: use the deployment's own fields "
                "(instances, models, script, code_dir) instead"
            )
        if name not in known:
            allowed = ", ".join(sorted(known - OWNED_SERVE_OPTIONS))
            raise InvalidSpec(f"{key!r} is not a serve option; the options are: {allowed}")
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            value = ",".join(value)  # serve's list settings are comma-separated
        if isinstance(value, str) and "\0" in value:
            raise InvalidSpec(f"serve option {key!r} holds a NUL character")
        try:
            _Declared(**{name: value})  # one at a time, so the message names the option that is wrong
        except ValidationError as error:
            message = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
            raise InvalidSpec(f"serve option {key!r}: {message}") from None
        given[name] = value
    return given


def serve_settings_of(options: Mapping[str, Any], *, owned: bool = False) -> ServeSettings:
    """The checked options as typed settings (for rendering them, one validated field at a time)."""
    return _Declared(**check_serve_options(options, owned=owned))


@dataclass(frozen=True, slots=True)
class Traffic:
    """Percentages of an endpoint's requests per deployment (summing to 100, or empty), and a mirror."""

    split: Mapping[str, int]
    mirror: str | None = None  # a deployment that also receives a copy of requests; its answers are dropped
    mirror_percent: int = 0

    @classmethod
    def parse(cls, pairs: Sequence[str]) -> Traffic:
        """From `blue=90 green=10` (the CLI's form)."""
        split: dict[str, int] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not value.strip().isdigit():
                raise InvalidSpec(f"{pair!r} is not DEPLOYMENT=PERCENT (e.g. blue=90)")
            split[name.strip()] = int(value)
        return cls(split)

    def __post_init__(self) -> None:
        for name, percent in self.split.items():
            check_resource_name("deployment", name)
            if not 0 <= percent <= 100:
                raise InvalidSpec(f"{name}={percent}: a percentage is between 0 and 100")
        total = sum(self.split.values())
        if self.split and total != 100:
            listed = ", ".join(f"{name}={percent}" for name, percent in self.split.items())
            raise InvalidSpec(f"traffic must sum to 100, not {total} ({listed})")
        if not 0 <= self.mirror_percent <= 100:
            raise InvalidSpec(f"the mirror percentage is between 0 and 100, not {self.mirror_percent}")
        if self.mirror is not None:
            check_resource_name("deployment", self.mirror)
            if self.split.get(self.mirror):
                raise InvalidSpec(f"{self.mirror} takes live traffic; a mirror must be a deployment with 0%")

    def check_against(self, deployments: Sequence[str]) -> None:
        """Every deployment named must exist behind the endpoint."""
        for name in (*self.split, *([self.mirror] if self.mirror else [])):
            if name not in deployments:
                known = ", ".join(deployments) or "none yet"
                raise InvalidSpec(f"the endpoint has no deployment {name!r} (deployments: {known})")
