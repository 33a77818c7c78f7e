"""The model registry through the control plane's API: `/api/v1/models[/NAME[/aliases/ALIAS]]`.

The CLI reads the registry's files directly; the API gives the same to a client on another machine and to
the web console, with what only the control plane knows: which deployments run each version.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scorehost.deploy.state import DeployState
from scorehost.errors import InvalidSpec
from scorehost.registry import Registry
from scorehost.registry.names import check_alias, check_name, parse_ref

__all__ = ["ModelsApi"]


class ModelsApi:
    """Reads and alias moves on the registry of the workspace `home`, opened per call (admin traffic is light,
    and a registry held open would keep its database connections across a fork)."""

    def __init__(self, home: Path, state: DeployState) -> None:
        self.home = home
        self.state = state

    def summaries(self) -> list[dict[str, Any]]:
        with Registry(self.home) as registry:
            return [summary.to_json() for summary in registry.list_models()]

    def show(self, name: str) -> dict[str, Any]:
        """The model with every version (newest first), each with its files and the deployments that run it."""
        check_name(name)
        users = self._users()
        with Registry(self.home) as registry:
            versions = registry.list_versions(name)
            listed = [
                {
                    **version.to_json(),
                    "files": [stored.to_json() for stored in registry.files(version.ref)],
                    "used_by": users.get((name, version.version), []),
                }
                for version in reversed(versions)
            ]
            summary = next(s for s in registry.list_models() if s.name == name)
        return {**summary.to_json(), "versions": listed}

    def set_alias(self, name: str, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        version = body.get("version")
        if isinstance(version, bool) or not isinstance(version, int | str) or version == "":
            raise InvalidSpec('give the version the alias points to, like {"version": 3}')
        with Registry(self.home) as registry:
            return registry.set_alias(check_name(name), check_alias(alias), version).to_json()

    def remove_alias(self, name: str, alias: str) -> int:
        with Registry(self.home) as registry:
            return registry.remove_alias(check_name(name), check_alias(alias))

    def _users(self) -> dict[tuple[str, int], list[str]]:
        """`ENDPOINT/DEPLOYMENT` names by the (model, version) they run: specs pin every model to a version."""
        users: dict[tuple[str, int], list[str]] = {}
        for endpoint in self.state.endpoints():
            for record in self.state.deployments(endpoint.name):
                for ref in _pinned(record.spec.models):
                    users.setdefault(ref, []).append(f"{endpoint.name}/{record.spec.name}")
        return users


def _pinned(refs: Iterable[str]) -> Iterable[tuple[str, int]]:
    for text in refs:
        ref = parse_ref(text)
        if isinstance(ref.version, int):
            yield ref.name, ref.version
