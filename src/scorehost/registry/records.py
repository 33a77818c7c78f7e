"""What the registry returns: plain, immutable records that print as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from scorehost.timestamps import iso_utc

__all__ = [
    "DeleteResult",
    "GarbageReport",
    "ModelSummary",
    "ModelVersion",
    "StoredFile",
    "TransferProgress",
    "VerifyProblem",
    "VerifyReport",
]


class TransferProgress(Protocol):
    """Follows a long copy: `begin` once with the total bytes, `advance` as they move, `end` once."""

    def begin(self, description: str, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def end(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of a version: its path inside the version folder, sha256 and size."""

    path: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model (its files: `Registry.files`)."""

    name: str
    version: int
    kind: str  # "file" or "folder"
    root: str  # the registered file's or folder's name, kept under `<name>/<version>/`
    digest: str  # sha256 over the version's file list: equal digests mean identical content
    size: int
    file_count: int
    description: str
    created_at: float
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """`name:version`, accepted wherever a model reference is."""
        return f"{self.name}:{self.version}"

    @property
    def created(self) -> str:
        """Creation time, ISO 8601 in UTC."""
        return iso_utc(self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "root": self.root,
            "sha256": self.digest,
            "size": self.size,
            "file_count": self.file_count,
            "description": self.description,
            "created_at": self.created,
            "tags": dict(self.tags),
            "properties": dict(self.properties),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """A model name with its version count, latest version and aliases."""

    name: str
    versions: int
    latest: int | None  # None once every version was deleted
    aliases: Mapping[str, int]
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "latest": self.latest,
            "aliases": dict(self.aliases),
            "created_at": iso_utc(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What `Registry.delete` removed."""

    name: str
    version: int
    aliases_removed: tuple[str, ...]
    bytes_freed: int
    reclaim_deferred: bool  # a registration was in flight; `scorehost models gc` frees the rest


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """A stored file that no longer matches what was registered."""

    name: str
    version: int
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version} {self.path}: {self.problem}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of `Registry.verify`: checked counts and every problem found."""

    versions: int
    files: int
    bytes: int
    problems: tuple[VerifyProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "versions": self.versions,
            "files": self.files,
            "bytes": self.bytes,
            "problems": [
                {"name": p.name, "version": p.version, "path": p.path, "problem": p.problem} for p in self.problems
            ],
        }


@dataclass(frozen=True, slots=True)
class GarbageReport:
    """What `Registry.gc` removed: unreferenced blobs, scratch copies of dead registrations, and the folders
    of servers that are gone."""

    blobs: int
    bytes_freed: int  # by the blobs
    server_folders: int
    scratch_files: int = 0
    scratch_bytes: int = 0
