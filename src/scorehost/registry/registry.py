"""`Registry`: versioned models with aliases, stored by content, served by reference.

```python
from scorehost import Registry

registry = Registry()                          # SCOREHOST_HOME, default ~/.scorehost
v = registry.register("sklearn_mnist", "model.pkl", tags={"team": "vision"})   # v.version == 1
registry.set_alias("sklearn_mnist", "production", 1)
registry.get("sklearn_mnist:production").digest
registry.model_dir(["sklearn_mnist:production"])   # -> this process's own AZUREML_MODEL_DIR to serve it with
```

A registration copies the files into the store first (outside any database lock, hashing as it
copies), syncs them, then writes every row of the version in one transaction: a crash at any point
leaves the whole version or nothing that names it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import sqlalchemy as sa

from scorehost.config import WorkspaceSettings
from scorehost.errors import InvalidModelReference, ModelInUse, UnknownModel
from scorehost.registry import database, locking
from scorehost.registry.database import tables as t
from scorehost.registry.layout import write_verified
from scorehost.registry.names import ModelRef, check_alias, check_name, parse_ref
from scorehost.registry.private import warn_if_shared
from scorehost.registry.records import (
    DeleteResult,
    GarbageReport,
    ModelSummary,
    ModelVersion,
    StoredFile,
    TransferProgress,
    VerifyProblem,
    VerifyReport,
)
from scorehost.registry.serving import ServerFolders, remove_old_layouts
from scorehost.registry.sources import collect_sources
from scorehost.registry.store import BlobStore

__all__ = ["Registry"]

_MAX_KEY = 255
_SCRATCH_AGE = 3600.0  # seconds untouched after which gc takes a registration's scratch copy for abandoned


def _check_pairs(kind: str, pairs: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in (pairs or {}).items():
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
            raise InvalidModelReference(
                f"{kind} key {key!r} must be a non-empty string of at most {_MAX_KEY} characters"
            )
        if not isinstance(value, str):
            raise InvalidModelReference(f"{kind} {key!r} must have a string value, not {type(value).__name__}")
        checked[_text(f"{kind} {key!r}", key)] = _text(f"{kind} {key!r}", value)
    return checked


def _text(what: str, value: str) -> str:
    """`value`, if the database can hold it: bytes that are not UTF-8 (from argv) arrive as lone surrogates."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidModelReference(f"{what} is not UTF-8 text: {ascii(value)}") from None
    return value


def _manifest_digest(stored: Iterable[StoredFile]) -> str:
    lines = "".join(f"{item.digest}  {item.path}\n" for item in sorted(stored, key=lambda item: item.path))
    return hashlib.sha256(lines.encode()).hexdigest()


class Registry:
    """The model registry of one workspace; safe to use from several processes at once."""

    def __init__(self, home: str | os.PathLike[str] | None = None, *, url: str | None = None) -> None:
        settings = WorkspaceSettings() if home is None else WorkspaceSettings(home=Path(home))
        self.home = settings.workspace
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        warn_if_shared(self.home)
        self.url = url or settings.database_url
        self.store = BlobStore(self.home / "store")
        self.servers = ServerFolders(self.home / "servers", self.store)
        self._engine = database.connect(self.url)
        database.migrate(self._engine)

    def close(self) -> None:
        """Release the database connections (also done on garbage collection)."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        progress: TransferProgress | None = None,
        reuse_identical: bool = False,
    ) -> ModelVersion:
        """Store a file or folder as the next version of `name` (created on first use). With `reuse_identical`, a
        version of `name` holding the same files under the same paths is returned instead of a new one (Azure ML's
        registration of a deployment's inline model: content-addressed)."""
        check_name(name)
        tag_values, property_values = _check_pairs("tag", tags), _check_pairs("property", properties)
        _text("the description", description)
        kind, root, sources = collect_sources(Path(path))
        total = sum(source.size for source in sources)
        with self.store.registering():
            stored: list[StoredFile] = []
            if progress is not None:
                progress.begin(f"registering {name}", total)
            try:
                for source in sources:
                    digest, size = self.store.ingest(source.source, progress)
                    stored.append(StoredFile(source.path, digest, size))
            finally:
                if progress is not None:
                    progress.end()
            self.store.sync(item.digest for item in stored)
            now = time.time()
            size = sum(item.size for item in stored)
            manifest = _manifest_digest(stored)
            version, existing = self._commit_version(
                name, kind, root, manifest, stored, description, now, tag_values, property_values, reuse_identical
            )
        if existing:
            return self.get(f"{name}:{version}")
        # Built from what was just written (a new version has no aliases yet): no query back.
        return ModelVersion(
            name, version, kind, root, manifest, size, len(stored), description, now, tag_values, property_values
        )

    @locking.retried
    def _commit_version(
        self,
        name: str,
        kind: str,
        root: str,
        manifest: str,
        stored: list[StoredFile],
        description: str,
        now: float,
        tags: dict[str, str],
        properties: dict[str, str],
        reuse_identical: bool,
    ) -> tuple[int, bool]:
        """Write every row of a version in one transaction: (its number, whether it is an identical earlier one)."""
        with database.writing(self._engine, lock=f"model:{name}") as conn:
            if reuse_identical:
                same = conn.execute(
                    sa.select(t.versions.c.version)
                    .where(t.versions.c.name == name, t.versions.c.digest == manifest)
                    .order_by(t.versions.c.version.desc())
                ).scalar()
                if same is not None:
                    return int(same), True
            version = self._next_version(conn, name, now)
            self._insert_version(conn, name, version, kind, root, manifest, stored, description, now)
            for table, values in ((t.tags, tags), (t.properties, properties)):
                if values:
                    rows = [{"name": name, "version": version, "key": k, "value": v} for k, v in values.items()]
                    conn.execute(table.insert(), rows)
        return version, False

    @staticmethod
    def _insert_version(
        conn: sa.Connection,
        name: str,
        version: int,
        kind: str,
        root: str,
        manifest: str,
        stored: list[StoredFile],
        description: str,
        now: float,
    ) -> None:
        conn.execute(
            t.versions.insert().values(
                name=name,
                version=version,
                kind=kind,
                root=root,
                digest=manifest,
                size=sum(item.size for item in stored),
                file_count=len(stored),
                description=description,
                created_at=now,
            )
        )
        rows = [{"name": name, "version": version, "path": s.path, "digest": s.digest, "size": s.size} for s in stored]
        conn.execute(t.files.insert(), rows)

    @staticmethod
    def _next_version(conn: sa.Connection, name: str, now: float) -> int:
        # Correct without the transaction's lock too: the row is made unless it exists (perhaps made by a registration
        # not yet committed, which this one then waits for), and the increment locks it.
        locking.insert_new(conn, t.models, {"name": name, "last_version": 0, "created_at": now})
        models = t.models.c
        conn.execute(t.models.update().where(models.name == name).values(last_version=models.last_version + 1))
        return int(conn.execute(sa.select(models.last_version).where(models.name == name)).scalar_one())

    @locking.retried
    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        """Point `name:alias` at a version, given as a number or as another alias (moving it if set)."""
        check_alias(alias)
        with database.writing(self._engine, lock=f"model:{check_name(name)}") as conn:
            _, number = self._resolve(conn, f"{name}:{version}")
            row = {"name": name, "alias": alias, "version": number, "updated_at": time.time()}
            locking.upsert(conn, t.aliases, row, keys=("name", "alias"))
        return self.get(ModelRef(name, version=number))

    @locking.retried
    def remove_alias(self, name: str, alias: str) -> int:
        """Remove `name:alias`; returns the version it pointed to."""
        check_alias(alias)
        with database.writing(self._engine, lock=f"model:{check_name(name)}") as conn:
            version = conn.execute(
                sa.select(t.aliases.c.version).where(t.aliases.c.name == check_name(name), t.aliases.c.alias == alias)
            ).scalar()
            if version is None:
                raise UnknownModel(f"model {name!r} has no alias {alias!r}{self._aliases_hint(conn, name)}")
            conn.execute(t.aliases.delete().where(t.aliases.c.name == name, t.aliases.c.alias == alias))
        return int(version)

    @locking.retried
    def delete(self, ref: str | ModelRef, *, force: bool = False) -> DeleteResult:
        """Delete one version; with aliases pointing to it, only with `force` (they are removed too)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        with database.writing(self._engine, lock=f"model:{parsed.name}") as conn:
            name, version = self._resolve(conn, parsed)
            pointing = tuple(
                conn.execute(
                    sa.select(t.aliases.c.alias)
                    .where(t.aliases.c.name == name, t.aliases.c.version == version)
                    .order_by(t.aliases.c.alias)
                ).scalars()
            )
            if pointing and not force:
                listed = ", ".join(f"{name}:{alias}" for alias in pointing)
                raise ModelInUse(
                    f"{name}:{version} is what {listed} point{'s' if len(pointing) == 1 else ''} to; move the "
                    f"alias first (`scorehost models alias {name} {pointing[0]} VERSION`) or delete with --force"
                )
            digests = set(
                conn.execute(
                    sa.select(t.files.c.digest).where(t.files.c.name == name, t.files.c.version == version)
                ).scalars()
            )
            for table in (t.aliases, t.tags, t.properties, t.files, t.versions):
                conn.execute(table.delete().where(table.c.name == name, table.c.version == version))
        freed, deferred = self._reclaim(digests, wait=False)
        return DeleteResult(name, version, pointing, freed, deferred)

    def gc(self) -> GarbageReport:
        """Remove blobs no version references, scratch copies of dead registrations, and folders of gone servers.

        A scratch copy goes when its writer's process is gone or it was untouched for an hour.
        """
        with self.store.reclaiming(wait=True):
            referenced = self._referenced()
            orphans = [digest for digest in self.store.digests() if digest not in referenced]
            freed = self.store.remove(orphans)
            scratch, scratch_bytes = self.store.remove_stale_parts(older_than=_SCRATCH_AGE)
        folders = self.servers.reclaim() + remove_old_layouts(self.home / "layouts")
        return GarbageReport(len(orphans), freed, folders, scratch, scratch_bytes)

    def _reclaim(self, digests: set[str], *, wait: bool) -> tuple[int, bool]:
        with self.store.reclaiming(wait=wait) as exclusive:
            if not exclusive:
                return 0, True
            # Decided under the exclusive lock: no registration can be between ingest and commit now.
            return self.store.remove(digests - self._referenced()), False

    def _referenced(self) -> set[str]:
        with database.read_only(self._engine) as conn:
            return set(conn.execute(sa.select(t.files.c.digest).distinct()).scalars())

    # -- reading ---------------------------------------------------------------------------------

    def resolve(self, ref: str | ModelRef) -> tuple[str, int]:
        """(name, version) for `name`, `name:3`, `name:alias` or `name:latest`."""
        with database.read_only(self._engine) as conn:
            return self._resolve(conn, ref)

    def get(self, ref: str | ModelRef) -> ModelVersion:
        """The version `ref` names, with its tags, properties and aliases."""
        with database.read_only(self._engine) as conn:
            name, version = self._resolve(conn, ref)
            return self._versions(conn, (t.versions.c.name == name) & (t.versions.c.version == version))[0]

    def files(self, ref: str | ModelRef) -> list[StoredFile]:
        """The files of a version, by path."""
        with database.read_only(self._engine) as conn:
            name, version = self._resolve(conn, ref)
            return self._files(conn, name, version)

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version of `name` (or of every model), oldest first."""
        with database.read_only(self._engine) as conn:
            if name is None:
                return self._versions(conn, sa.true())
            self._require_model(conn, check_name(name))
            return self._versions(conn, t.versions.c.name == name)

    def list_models(self) -> list[ModelSummary]:
        """Every model name with its version count, latest version and aliases."""
        with database.read_only(self._engine) as conn:
            counts: dict[str, tuple[int, int | None]] = {
                row.name: (row.version_count, row.latest)
                for row in conn.execute(
                    sa.select(
                        t.versions.c.name,
                        sa.func.count().label("version_count"),
                        sa.func.max(t.versions.c.version).label("latest"),
                    ).group_by(t.versions.c.name)
                )
            }
            aliases: dict[str, dict[str, int]] = {}
            for row in conn.execute(sa.select(t.aliases).order_by(t.aliases.c.alias)):
                aliases.setdefault(row.name, {})[row.alias] = row.version
            summaries = []
            for row in conn.execute(sa.select(t.models).order_by(t.models.c.name)):
                count, latest = counts.get(row.name, (0, None))
                summaries.append(ModelSummary(row.name, count, latest, aliases.get(row.name, {}), row.created_at))
            return summaries

    def download(
        self,
        ref: str | ModelRef,
        destination: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: TransferProgress | None = None,
    ) -> Path:
        """Write a version's file or folder into `destination`, verifying every checksum; returns its path."""
        version = self.get(ref)
        return write_verified(
            self.store, version, self.files(version.ref), Path(destination), overwrite=overwrite, progress=progress
        )

    def verify(
        self, ref: str | ModelRef | None = None, *, quarantine: bool = True, progress: TransferProgress | None = None
    ) -> VerifyReport:
        """Re-hash the stored files of one version (or all) and report every mismatch or missing file.

        With `quarantine` (the default) a damaged blob is moved to `store/damaged/`, so no layout or
        download uses it again and registering the original bytes stores them afresh.
        """
        chosen = [self.get(ref)] if ref is not None else self.list_versions()
        listed = [(version, self.files(version.ref)) for version in chosen]
        problems: list[VerifyProblem] = []
        checked: dict[tuple[str, int], str | None] = {}
        total = sum(size for _, size in {(item.digest, item.size) for _, stored in listed for item in stored})
        if progress is not None:
            progress.begin("verifying", total)
        try:
            for version, stored in listed:
                for item in stored:
                    key = (item.digest, item.size)
                    if key not in checked:
                        problem = self.store.check(item.digest, item.size, full=True, progress=progress)
                        if problem is not None and quarantine:
                            moved = self.store.quarantine(item.digest)
                            if moved is not None:
                                problem += f"; moved to {moved}"
                        checked[key] = problem
                    if checked[key] is not None:
                        problems.append(VerifyProblem(version.name, version.version, item.path, str(checked[key])))
        finally:
            if progress is not None:
                progress.end()
        files = sum(len(stored) for _, stored in listed)
        size = sum(item.size for _, stored in listed for item in stored)
        return VerifyReport(len(listed), files, size, tuple(problems))

    def model_dir(self, refs: Sequence[str | ModelRef]) -> Path:
        """A new AZUREML_MODEL_DIR of this process's own serving these versions, laid out as Azure ML does.

        Its files are reflinks or copies of the stored ones, so what a script writes there reaches neither the
        registry nor another server. It lives until this process exits (`release_model_dir` removes it
        sooner); folders of processes that are gone are removed here and by `gc`.
        """
        if not refs:
            raise InvalidModelReference("no model given; pass at least one NAME[:VERSION|:ALIAS]")
        chosen: dict[tuple[str, int], tuple[ModelVersion, list[StoredFile]]] = {}
        for ref in refs:
            version = self.get(ref)
            chosen.setdefault((version.name, version.version), (version, self.files(version.ref)))
        self.servers.reclaim()
        return self.servers.create(list(chosen.values()))

    def release_model_dir(self, model_dir: Path) -> None:
        """Remove a folder `model_dir` made in this process (its files are gone afterwards)."""
        folder = model_dir
        while folder.parent != self.servers.root:
            if folder == folder.parent:
                raise InvalidModelReference(f"{model_dir} is not a folder that model_dir() made")
            folder = folder.parent
        self.servers.release(folder)

    # -- queries -----------------------------------------------------------------------------------

    def _resolve(self, conn: sa.Connection, ref: str | ModelRef) -> tuple[str, int]:
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        name = parsed.name
        if parsed.version is not None:
            self._require_version(conn, name, parsed.version)
            return name, parsed.version
        if parsed.alias is not None:
            version = conn.execute(
                sa.select(t.aliases.c.version).where(t.aliases.c.name == name, t.aliases.c.alias == parsed.alias)
            ).scalar()
            if version is None:
                self._require_model(conn, name)
                raise UnknownModel(f"model {name!r} has no alias {parsed.alias!r}{self._aliases_hint(conn, name)}")
            return name, int(version)
        latest = conn.execute(sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.name == name)).scalar()
        if latest is None:
            self._require_model(conn, name)
            raise UnknownModel(f"model {name!r} has no versions left; register one with `scorehost models register`")
        return name, int(latest)

    def _require_model(self, conn: sa.Connection, name: str) -> None:
        if conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first() is None:
            known = list(conn.execute(sa.select(t.models.c.name).order_by(t.models.c.name).limit(10)).scalars())
            hint = f" (registered: {', '.join(known)})" if known else " (the registry is empty)"
            raise UnknownModel(f"no model named {name!r}{hint}; `scorehost models list` shows them all")

    def _require_version(self, conn: sa.Connection, name: str, version: int) -> None:
        found = conn.execute(
            sa.select(t.versions.c.version).where(t.versions.c.name == name, t.versions.c.version == version)
        ).first()
        if found is None:
            self._require_model(conn, name)
            known = list(conn.execute(sa.select(t.versions.c.version).where(t.versions.c.name == name)).scalars())
            listed = ", ".join(str(number) for number in sorted(known)) or "none"
            raise UnknownModel(f"model {name!r} has no version {version} (versions: {listed})")

    def _aliases_hint(self, conn: sa.Connection, name: str) -> str:
        known = list(conn.execute(sa.select(t.aliases.c.alias).where(t.aliases.c.name == name)).scalars())
        return f" (aliases: {', '.join(sorted(known))})" if known else " (it has no aliases)"

    def _files(self, conn: sa.Connection, name: str, version: int) -> list[StoredFile]:
        rows = conn.execute(
            sa.select(t.files.c.path, t.files.c.digest, t.files.c.size)
            .where(t.files.c.name == name, t.files.c.version == version)
            .order_by(t.files.c.path)
        )
        return [StoredFile(row.path, row.digest, row.size) for row in rows]

    def _versions(self, conn: sa.Connection, where: sa.ColumnElement[bool]) -> list[ModelVersion]:
        extras: dict[str, dict[tuple[str, int], dict[str, str]]] = {"tags": {}, "properties": {}}
        for kind, table in (("tags", t.tags), ("properties", t.properties)):
            joined = table.join(
                t.versions, (table.c.name == t.versions.c.name) & (table.c.version == t.versions.c.version)
            )
            query = sa.select(table.c.name, table.c.version, table.c.key, table.c.value).select_from(joined)
            for name, number, key, value in conn.execute(query.where(where)):
                extras[kind].setdefault((name, number), {})[key] = value
        aliases: dict[tuple[str, int], list[str]] = {}
        for name, alias, number in conn.execute(
            sa.select(t.aliases.c.name, t.aliases.c.alias, t.aliases.c.version).order_by(t.aliases.c.alias)
        ):
            aliases.setdefault((name, number), []).append(alias)
        v = t.versions.c
        columns = (v.name, v.version, v.kind, v.root, v.digest, v.size, v.file_count, v.description, v.created_at)
        tags, properties = extras["tags"], extras["properties"]
        empty: dict[str, str] = {}
        found = []
        # Unpacked by position: reading ten attributes by name from each of 10,000 rows doubles the time.
        for name, number, kind, root, digest, size, file_count, description, created_at in conn.execute(
            sa.select(*columns).where(where).order_by(v.name, v.version)
        ):
            key = (name, number)
            found.append(
                ModelVersion(
                    name,
                    number,
                    kind,
                    root,
                    digest,
                    size,
                    file_count,
                    description,
                    created_at,
                    tags.get(key, empty),
                    properties.get(key, empty),
                    tuple(aliases.get(key, ())),
                )
            )
        return found
