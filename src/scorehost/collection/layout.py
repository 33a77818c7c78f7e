"""Where rows land: `<directory>/<collection>/<yyyy>/<MM>/<dd>/<HH>[/<mm>]/<host>-<pid>.jsonl`, in UTC.

The rolling rate sets how deep the partition goes (Year: `yyyy`, Month: `yyyy/MM`, ... Minute: `.../HH/mm`). The
writer builds these paths; the reader and retention parse them back, each file on its own, so a tree written under
several rolling rates still reads and prunes.
"""

from __future__ import annotations

import calendar
import os
import re
import socket
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "ROLLING_RATES",
    "PartitionFile",
    "file_name",
    "is_collection_name",
    "iter_files",
    "partition",
    "partition_interval",
]

# Azure's names, in the order of depth.
ROLLING_RATES = ("Year", "Month", "Day", "Hour", "Minute")
_DEPTH = {name: depth for depth, name in enumerate(ROLLING_RATES, start=1)}
_WIDTHS = (4, 2, 2, 2, 2)
_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def is_collection_name(name: str) -> bool:
    """Whether `name` can be a collection: it becomes a folder name, so letters, digits, `_`, `.`, `-` only."""
    return _COLLECTION.fullmatch(name) is not None


def partition(epoch_seconds: int, rolling_rate: str) -> str:
    """The partition folder (relative, `/`-separated) of a time, as deep as `rolling_rate` says."""
    t = time.gmtime(epoch_seconds)
    parts = (f"{t.tm_year:04d}", f"{t.tm_mon:02d}", f"{t.tm_mday:02d}", f"{t.tm_hour:02d}", f"{t.tm_min:02d}")
    return "/".join(parts[: _DEPTH[rolling_rate]])


def file_name(hostname: str | None = None, pid: int | None = None) -> str:
    """This process's file name in each partition: `<hostname>-<pid>.jsonl`, one writer per file."""
    host = _UNSAFE.sub("_", hostname if hostname is not None else socket.gethostname()) or "host"
    return f"{host}-{pid if pid is not None else os.getpid()}.jsonl"


class PartitionFile(NamedTuple):
    """A data file found in a tree, with the UTC interval [start, end) its partition covers."""

    collection: str
    start: float
    end: float
    path: Path


def partition_interval(parts: Sequence[str]) -> tuple[float, float] | None:
    """The UTC interval [start, end) of a partition folder's parts (`["2024", "05", "01", "13"]`), or None."""
    if not 1 <= len(parts) <= len(_WIDTHS) or not all(
        len(part) == width and part.isascii() and part.isdigit() for part, width in zip(parts, _WIDTHS, strict=False)
    ):
        return None
    numbers = [int(part) for part in parts]
    year, month, day, hour, minute = (numbers + [1, 1, 0, 0][len(numbers) - 1 :])[:5]
    try:
        start = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))
        if time.gmtime(start)[:5] != (year, month, day, hour, minute):
            return None  # 2023/02/30 and friends
    except (OverflowError, ValueError):
        return None
    if len(parts) == 1:
        end = calendar.timegm((year + 1, 1, 1, 0, 0, 0, 0, 0, 0))
    elif len(parts) == 2:
        end = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0, 0, 0, 0))
    else:
        end = start + (86400, 3600, 60)[len(parts) - 3]
    return float(start), float(end)


def _walk(folder: Path, parts: list[str], collection: str) -> Iterator[PartitionFile]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return  # pruned underneath us by another process
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            if len(parts) < len(_WIDTHS) and len(name) == _WIDTHS[len(parts)] and name.isascii() and name.isdigit():
                yield from _walk(Path(entry.path), [*parts, name], collection)
        elif parts and name.endswith(".jsonl") and not name.startswith("."):
            interval = partition_interval(parts)
            if interval is not None:
                yield PartitionFile(collection, interval[0], interval[1], Path(entry.path))


def iter_files(directory: Path, collections: Collection[str] | None = None) -> Iterator[PartitionFile]:
    """Every data file under `directory` (of the named collections, or all), tolerant of files vanishing."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return
    for name in names:
        if is_collection_name(name) and (collections is None or name in collections):
            yield from _walk(directory / name, [], name)
