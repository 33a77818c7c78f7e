"""What a registration will store: the files under a path the user gave, checked before any copy.

A registered file keeps its own name; a registered folder keeps its folder name, with every file
inside it (Azure ML's layout: `<name>/<version>/<file or folder>`). Paths inside are stored relative,
in POSIX form; a symbolic link is followed only when it stays inside the folder, and only to a file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scorehost.errors import InvalidModelReference

__all__ = ["SourceFile", "collect_sources"]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file to store: where it is now, and its path inside the version folder."""

    source: Path
    path: str  # e.g. "model.pkl" or "retrained/weights/encoder.bin"
    size: int


def _refuse(path: Path, why: str) -> InvalidModelReference:
    return InvalidModelReference(f"cannot register {path}: {why}")


def collect_sources(path: Path) -> tuple[str, str, list[SourceFile]]:
    """(kind, root name, files) for a file or folder; InvalidModelReference says what is wrong."""
    if not path.exists():
        raise _refuse(path, "no such file or folder")
    root = path.resolve()
    _check_utf8(root, root.name)
    if root.is_file():
        return "file", root.name, [SourceFile(root, root.name, root.stat().st_size)]
    if not root.is_dir():
        raise _refuse(path, "not a regular file or folder")
    found: list[SourceFile] = []
    for folder, dirnames, filenames in os.walk(root, onerror=_raise):
        here = Path(folder)
        for dirname in dirnames:
            if (here / dirname).is_symlink():
                raise _refuse(here / dirname, "a symbolic link to a folder; copy the folder in instead")
        for filename in filenames:
            found.append(_source_file(root, here / filename))
    if not found:
        raise _refuse(path, "the folder has no files")
    found.sort(key=lambda item: item.path)
    return "folder", root.name, found


def _source_file(root: Path, entry: Path) -> SourceFile:
    target = entry
    if entry.is_symlink():
        target = entry.resolve()
        if not target.is_relative_to(root):
            raise _refuse(entry, f"a symbolic link to {target}, outside the folder being registered")
    try:
        info = target.stat()
    except OSError as error:
        raise _refuse(entry, error.strerror or str(error)) from error
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(entry, "not a regular file (a device, socket or pipe)")
    relative = PurePosixPath(root.name, *entry.relative_to(root).parts).as_posix()
    _check_utf8(entry, relative)
    return SourceFile(target, relative, info.st_size)


def _check_utf8(path: Path, stored: str) -> None:
    # A name of bytes that are not UTF-8 arrives with lone surrogates, which the database cannot hold.
    try:
        stored.encode()
    except UnicodeEncodeError:
        raise _refuse(path, "its name is not UTF-8 text; rename it") from None


def _raise(error: OSError) -> None:
    raise _refuse(Path(error.filename or "?"), error.strerror or str(error)) from error
