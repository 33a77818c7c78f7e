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

from scorehost.errors import InvalidSpec
from scorehost.registry.names import parse_ref

__all__ = ["AuthMode", "DeploymentSpec", "EndpointSpec", "Traffic", "check_resource_name"]

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

    def __post_init__(self) -> None:
        check_resource_name("endpoint", self.name)
        try:
            object.__setattr__(self, "auth", AuthMode(self.auth))
        except ValueError:
            raise InvalidSpec(f"auth must be 'key' or 'none', not {self.auth!r}") from None


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

    def __post_init__(self) -> None:
        check_resource_name("endpoint", self.endpoint)
        check_resource_name("deployment", self.name)
        if not 1 <= self.instances <= 64:
            raise InvalidSpec(f"instances must be between 1 and 64, not {self.instances}")
        for ref in self.models:
            parse_ref(ref)  # InvalidModelReference names the problem
        code_dir = self.code_dir.expanduser().resolve()
        script = self.script if self.script.is_absolute() else code_dir / self.script
        script = script.resolve()
        if not script.is_relative_to(code_dir):
            raise InvalidSpec(f"the script {script} is outside the code folder {code_dir}; pass --code-dir")
        object.__setattr__(self, "code_dir", code_dir)
        object.__setattr__(self, "script", script)
        for key in self.environment:
            if not key or "=" in key or "\0" in key:
                raise InvalidSpec(f"{key!r} is not an environment variable name")

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
            environment=dict(data.get("environment", {})),
            serve_options=dict(data.get("serve_options", {})),
        )


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
