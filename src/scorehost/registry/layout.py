"""Putting stored files back on disk safely: paths that cannot leave their folder, and verified downloads.

(The folders `serve --model` serves from are built in `serving.py`.)
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from scorehost.errors import CorruptModel, InvalidModelReference
from scorehost.registry.copying import copy_hashing
from scorehost.registry.records import ModelVersion, StoredFile, TransferProgress
from scorehost.registry.space import NO_ROOM, no_room
from scorehost.registry.store import BlobStore

__all__ = ["safe_join", "write_verified"]


def safe_join(base: Path, relative: str) -> Path:
    """`base / relative` for a stored POSIX path, refusing anything that would leave `base`."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(part in ("..", ".", "") for part in parts):
        raise InvalidModelReference(f"refusing the stored path {relative!r}: it is not a plain relative path")
    return base.joinpath(*parts)


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
            except OSError as error:
                if error.errno not in NO_ROOM:
                    raise
                out.unlink(missing_ok=True)
                what, fix = f"downloading {version.ref} {item.path}", "Free space there, or download to another folder"
                raise no_room(error, out, what=what, needed=item.size, where=str(destination), fix=fix) from None
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
