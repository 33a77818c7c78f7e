"""Registered environments (`scorehost environments create -f environment.yml`): named, versioned environment
specifications in the workspace database, which a deployment names as `azureml:NAME:VERSION` or `azureml:NAME@latest`.

A registered version is immutable, like a model version: registering the same name and version again with the
same specification is a no-op, with a different one an error that says to bump the version.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scorehost.config import WorkspaceSettings
from scorehost.errors import InvalidEnvironment, ResourceExists, UnknownResource
from scorehost.registry import database, locking
from scorehost.registry.database import metadata
from scorehost.timestamps import iso_utc

__all__ = ["EnvironmentRegistry", "RegisteredEnvironment"]

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),  # EnvironmentSpec JSON, or "null" for an image-only environment
    sa.Column("image", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON object
    sa.Column("created_at", sa.Float, nullable=False),
)


def _create_v1(conn: sa.Connection) -> None:
    conn.execute(sa.schema.CreateTable(environments))


MIGRATIONS = (_create_v1,)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class RegisteredEnvironment:
    name: str
    version: str
    spec: Mapping[str, Any] | None  # None: only an image, which scorehost does not run
    image: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "python_environment": dict(self.spec) if self.spec is not None else None,
            "image": self.image,
            "description": self.description,
            "tags": dict(self.tags),
            "created_at": iso_utc(self.created_at),
        }


def _version_key(version: str) -> tuple[int, int | str]:
    """Numbers in numeric order, after names: `latest` is the highest number, else the newest registered."""
    return (1, int(version)) if version.isdigit() else (0, version)


class EnvironmentRegistry:
    """The workspace's registered environments."""

    def __init__(self, home: Path | None = None, *, url: str | None = None) -> None:
        settings = WorkspaceSettings() if home is None else WorkspaceSettings(home=home)
        settings.workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._engine = database.connect(url or settings.database_url)
        database.migrate(self._engine, key="environments_schema_version", steps=MIGRATIONS, what="environments")

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> EnvironmentRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @locking.retried
    def register(
        self,
        name: str,
        version: str | None,
        spec: Mapping[str, Any] | None,
        *,
        image: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredEnvironment:
        """Store NAME:VERSION (VERSION None: one more than the highest number so far, as Azure ML numbers)."""
        if not _NAME.fullmatch(name):
            raise InvalidEnvironment(f"{name!r} is not an environment name: letters, digits, '.', '_', '-'")
        if version is not None and not _VERSION.fullmatch(version):
            raise InvalidEnvironment(f"{version!r} is not an environment version: letters, digits, '.', '_', '-'")
        spec_text = json.dumps(dict(spec) if spec is not None else None, sort_keys=True)
        with database.writing(self._engine, lock=f"environment:{name}") as conn:
            rows = conn.execute(sa.select(environments).where(environments.c.name == name)).all()
            if version is None:
                numbers = [int(row.version) for row in rows if row.version.isdigit()]
                version = str(max(numbers, default=0) + 1)
            same = next((row for row in rows if row.version == version), None)
            if same is not None:
                if same.spec == spec_text and same.image == image:
                    return _record(same)
                raise ResourceExists(
                    f"environment {name}:{version} is registered with a different specification; registered "
                    "versions never change: give a new version (or --set version=...)"
                )
            values = {
                "name": name,
                "version": version,
                "spec": spec_text,
                "image": image,
                "description": description,
                "tags": json.dumps(dict(tags or {})),
                "created_at": time.time(),
            }
            conn.execute(environments.insert().values(**values))
        return self.get(name, version)

    def get(self, name: str, version: str | None = None, *, label: str | None = None) -> RegisteredEnvironment:
        """NAME:VERSION, or NAME@latest; UnknownResource naming the versions that exist."""
        with database.read_only(self._engine) as conn:
            rows = conn.execute(sa.select(environments).where(environments.c.name == name)).all()
        if not rows:
            raise UnknownResource(
                f"no environment {name!r} is registered; register it with `scorehost environments create -f "
                "environment.yml`"
            )
        if version is None and label in (None, "latest"):
            return _record(max(rows, key=lambda row: (_version_key(row.version), row.created_at)))
        if version is None:
            raise UnknownResource(f"environments have no labels but latest: write azureml:{name}@latest")
        for row in rows:
            if row.version == version:
                return _record(row)
        known = ", ".join(sorted((row.version for row in rows), key=_version_key))
        raise UnknownResource(f"environment {name} has no version {version} (versions: {known})")

    def list(self) -> list[RegisteredEnvironment]:
        with database.read_only(self._engine) as conn:
            rows = conn.execute(sa.select(environments).order_by(environments.c.name)).all()
        return sorted((_record(row) for row in rows), key=lambda e: (e.name, _version_key(e.version)))


def _record(row: sa.Row[Any]) -> RegisteredEnvironment:
    spec = json.loads(row.spec)
    return RegisteredEnvironment(
        row.name, row.version, spec, row.image, row.description, json.loads(row.tags), row.created_at
    )
