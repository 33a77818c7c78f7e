"""Retention: remove partitions older than the age limit, then the oldest files past the size limit.

Several worker processes prune the same tree, each from its own writer thread: every step tolerates files and
folders vanishing underneath it, and nothing is removed that a writer may still be appending to (its own open files,
named in `keep`, and any file written to within `active_seconds`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from scorehost.collection.layout import is_collection_name, iter_files, partition_interval

__all__ = ["PruneReport", "prune"]


@dataclass(frozen=True)
class PruneReport:
    """What one `prune` did: files and bytes removed, empty folders removed, and the bytes of data left."""

    files_removed: int = 0
    bytes_removed: int = 0
    folders_removed: int = 0
    bytes_left: int = 0


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False  # another process pruned it first
    return True


def prune(
    directory: Path,
    *,
    max_age_seconds: float | None,
    max_bytes: int | None,
    now: float | None = None,
    keep: Collection[Path] = (),
    active_seconds: float = 120.0,
) -> PruneReport:
    """Remove the data files of partitions that ended more than `max_age_seconds` ago, then the oldest files until
    the tree holds at most `max_bytes`, never a file in `keep`; then the empty partition folders that have ended."""
    directory = Path(directory).resolve()
    now = time.time() if now is None else now
    kept = {Path(path).resolve() for path in keep}
    removed = removed_bytes = 0
    left: list[tuple[float, float, str, Path, int]] = []  # start, mtime, name, path, size
    cutoff = None if max_age_seconds is None else now - max_age_seconds
    for found in iter_files(directory):
        try:
            stat = found.path.stat()
        except FileNotFoundError:
            continue
        if cutoff is not None and found.end <= cutoff and found.path not in kept:
            if _remove(found.path):
                removed += 1
                removed_bytes += stat.st_size
            continue
        left.append((found.start, stat.st_mtime, str(found.path), found.path, stat.st_size))
    total = sum(entry[4] for entry in left)
    if max_bytes is not None and total > max_bytes:
        for _start, mtime, _name, path, size in sorted(left):
            if total <= max_bytes:
                break
            if path in kept or mtime > now - active_seconds:
                continue  # a writer may still append to it: removing it would lose those rows unseen
            total -= size
            if _remove(path):
                removed += 1
                removed_bytes += size
    return PruneReport(removed, removed_bytes, _remove_empty_folders(directory, now), total)


def _remove_empty_folders(directory: Path, now: float) -> int:
    """Empty partition folders whose interval has ended (a writer may be about to fill a current one)."""
    count = 0
    try:
        collections = [entry.path for entry in os.scandir(directory) if is_collection_name(entry.name)]
    except FileNotFoundError:
        return 0
    for top in collections:
        for folder, _dirs, _files in os.walk(top, topdown=False):
            parts = Path(folder).relative_to(top).parts
            interval = partition_interval(parts) if parts else None
            if interval is None or interval[1] > now:
                continue
            try:
                os.rmdir(folder)
            except OSError:
                continue  # not empty, or gone already
            count += 1
    return count
