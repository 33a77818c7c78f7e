"""Deployments that follow a model label: when `NAME:ALIAS` moves (or `NAME:latest` gets a new version), the
deployment rolls to the version it names now.

A deployment asks for this with `follow_models` (the API), `--follow-model` (the CLI) or `scorehost:
{follow_model: true}` in its YAML. Its models stay pinned to versions, as every deployment's are; this checks the
labels every few seconds and declares a new generation when one moved. That generation rolls out like any update:
it starts beside the serving one and takes over only when ready; if it fails, the old one keeps serving and the
label is not tried again until it moves once more (the declared spec already names that version).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scorehost.deploy.spec import DeploymentSpec
from scorehost.deploy.state import DeploymentRecord, DeployState
from scorehost.errors import ScorehostError
from scorehost.registry.names import parse_ref

if TYPE_CHECKING:
    from scorehost.registry import Registry

__all__ = ["ModelFollower", "followed_models"]

logger = logging.getLogger("scorehost.controlplane")


def followed_models(declared: tuple[str, ...]) -> tuple[str, ...]:
    """The references in `declared` that name a label (an alias, or latest), not one version: those a following
    deployment follows."""
    return tuple(ref for ref in declared if parse_ref(ref).version is None)


class ModelFollower:
    """Checks the labels that deployments follow and declares a new generation when one moved."""

    def __init__(
        self,
        state: DeployState,
        home: Path,
        deploy: Callable[[DeploymentRecord], None],
        *,
        every: float = 2.0,
    ) -> None:
        self.state, self.home, self.deploy, self.every = state, home, deploy, every
        self._registry: Registry | None = None
        self._next = 0.0

    def check(self) -> None:
        """One pass (at most one every `every` seconds; cheap when nothing follows)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        following = [
            record
            for endpoint in self.state.endpoints()
            for record in self.state.deployments(endpoint.name)
            if record.spec.follow
        ]
        for record in following:
            try:
                self._check(record)
            except ScorehostError as error:  # a deleted model, say: the deployment keeps what it serves
                logger.warning(
                    "%s/%s follows %s, which cannot be resolved now: %s",
                    record.spec.endpoint,
                    record.spec.name,
                    ", ".join(record.spec.follow),
                    error.message,
                )

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def _resolve(self, ref: str) -> tuple[str, int]:
        if self._registry is None:
            from scorehost.registry import Registry

            self._registry = Registry(self.home)
        return self._registry.resolve(ref)

    def _check(self, record: DeploymentRecord) -> None:
        spec = record.spec
        targets = dict(self._resolve(ref) for ref in spec.follow)
        models = tuple(
            f"{name}:{targets[name]}" if (name := parse_ref(ref).name) in targets else ref for ref in spec.models
        )
        if models == tuple(spec.models):
            return
        data = spec.to_json()
        data["models"] = list(models)
        moved = self.state.put_deployment(DeploymentSpec.from_json(data), create=False)
        logger.info(
            "%s/%s follows %s: now %s; rolling out generation %d",
            spec.endpoint,
            spec.name,
            ", ".join(spec.follow),
            ", ".join(models),
            moved.generation,
        )
        self.deploy(moved)
