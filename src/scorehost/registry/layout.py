"""Putting stored files back on disk: serving layouts (links, no copies) and verified downloads.

A serving layout is the `AZUREML_MODEL_DIR` tree Azure ML documents, built from hard links into the
store (read-only symbolic links where the store is on another file system), so a 1 GB model is laid
out in microseconds. Layouts are keyed by content and built in a scratch folder renamed into place,
so a half-built one is never used and the same set of versions reuses the same tree.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from scorehost.errors import CorruptModel, InvalidModelReference
from scorehost.registry.copying import copy_hashing
from scorehost.registry.records import ModelVersion, StoredFile, TransferProgress
from scorehost.registry.store import BlobStore, process_alive

__all__ = ["Layouts", "safe_join", "write_verified"]

_LINK_FALLBACK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES}

# Shared locks on layouts this process serves from, held until it exits (closing them would release them).
_HELD: list[int] = []


def safe_join(base: Path, relative: str) -> Path:
    """`base / relative` for a stored POSIX path, refusing anything that would leave `base`."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(part in ("..", ".", "") for part in parts):
        raise InvalidModelReference(f"refusing the stored path {relative!r}: it is not a plain relative path")
    return base.joinpath(*parts)


class Layouts:
    """Serving layouts under `root` (`<root>/<key>/models/<name>/<version>/...`)."""

    def __init__(self, root: Path, store: BlobStore) -> None:
        self.root = root
        self.store = store

    def model_dir(self, chosen: Sequence[tuple[ModelVersion, Sequence[StoredFile]]], *, hold: bool = False) -> Path:
        """The AZUREML_MODEL_DIR for these versions: `<name>/<version>` for one, the folder of all for several.

        `hold=True` keeps the layout from `gc` for the rest of this process's life (a server using it).
        """
        key = hashlib.sha256(
            "\n".join(sorted(f"{v.name}:{v.version}:{v.digest}" for v, _ in chosen)).encode()
        ).hexdigest()[:24]
        final = self.root / key
        if not final.is_dir():
            self._build(final, chosen)
        if hold:
            fd = os.open(final / "refs.json", os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_SH)
            _HELD.append(fd)
        models = final / "models"
        if len(chosen) == 1:
            version = chosen[0][0]
            return models / version.name / str(version.version)
        return models

    def remove_stale(self, live_digests: set[tuple[str, int, str]]) -> int:
        """Remove layouts of versions no longer registered, except those a running server holds; returns how many."""
        removed = 0
        for layout in self._stale(live_digests):
            try:
                fd = os.open(layout / "refs.json", os.O_RDONLY)
            except OSError:  # a scratch folder of a dead process, or a damaged layout: nobody can hold it
                shutil.rmtree(layout, ignore_errors=True)
                removed += 1
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a server is using it: its worker restarts must still find the files
            else:
                shutil.rmtree(layout, ignore_errors=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def _stale(self, live_digests: set[tuple[str, int, str]]) -> list[Path]:
        found: list[Path] = []
        if not self.root.is_dir():
            return found
        for entry in self.root.iterdir():
            refs_file = entry / "refs.json"
            if entry.name.startswith("."):
                pid = entry.name.split(".")[2] if entry.name.count(".") >= 3 else ""
                if pid.isdigit() and not process_alive(int(pid)):
                    found.append(entry)
                continue
            try:
                refs = json.loads(refs_file.read_text())
            except (OSError, ValueError):
                found.append(entry)
                continue
            if any((ref["name"], ref["version"], ref["sha256"]) not in live_digests for ref in refs):
                found.append(entry)
        return found

    def _build(self, final: Path, chosen: Sequence[tuple[ModelVersion, Sequence[StoredFile]]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = self.root / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            for version, stored in chosen:
                folder = scratch / "models" / version.name / str(version.version)
                for item in stored:
                    problem = self.store.check(item.digest, item.size, full=False)
                    if problem:
                        raise CorruptModel(
                            f"{version.ref} {item.path}: {problem}; run `scorehost models verify` and "
                            "register the model again from its original files"
                        )
                    target = safe_join(folder, item.path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _link(self.store.path_of(item.digest), target)
            refs = [{"name": v.name, "version": v.version, "sha256": v.digest} for v, _ in chosen]
            (scratch / "refs.json").write_text(json.dumps(refs))
            try:
                scratch.rename(final)
            except OSError as error:  # another process built the same layout first: use theirs
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)


def _link(blob: Path, target: Path) -> None:
    try:
        os.link(blob, target)
    except OSError as error:
        if error.errno not in _LINK_FALLBACK:
            raise
        target.symlink_to(blob)


def write_verified(
    store: BlobStore,
    version: ModelVersion,
    stored: Sequence[StoredFile],
    destination: Path,
    *,
    overwrite: bool,
    progress: TransferProgress | None,
) -> Path:
    """Copy a version out to `destination/<root>`, checking every byte against its sha256 on the way."""
    target = destination / version.root
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise InvalidModelReference(f"{target} already exists; remove it, choose another folder, or pass --force")
    created = _first_missing(destination)
    destination.mkdir(parents=True, exist_ok=True)
    scratch = destination / f".{version.root}.partial-{secrets.token_hex(4)}"
    if progress is not None:
        progress.begin(f"downloading {version.ref}", version.size)
    try:
        scratch.mkdir()
        for item in stored:
            out = safe_join(scratch, item.path)
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(store.path_of(item.digest), "rb", buffering=0) as reader, open(out, "xb") as writer:
                    digest, size = copy_hashing(reader, writer, progress)
            except FileNotFoundError:
                digest, size = "missing from the store", -1
            if digest != item.digest or size != item.size:
                detail = digest if size < 0 else f"sha256 is {digest}, {item.digest} was registered"
                raise CorruptModel(
                    f"{version.ref} {item.path}: {detail}; nothing was written to {destination}. "
                    "Register the model again from its original files "
                    "(`scorehost models verify` lists every damaged one)"
                )
        if target.exists() or target.is_symlink():
            _remove(target)
        os.rename(scratch / version.root, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        if created is not None:  # folders this call made, now empty: a failed download leaves nothing
            _remove_empty_up_to(destination, created)
        raise
    finally:
        if progress is not None:
            progress.end()
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (None when `path` exists)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove_empty_up_to(path: Path, top: Path) -> None:
    for folder in (path, *path.parents):
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
