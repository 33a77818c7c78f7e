"""Getting written bytes onto the disk, cheaply: early write-back while copying, then one flush.

`sync_file_range` and `syncfs` are Linux calls the os module lacks; they are reached through libc
and, where missing, replaced by what POSIX has (nothing early; fsync per file).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["WRITEBACK_EVERY", "flush", "start_writeback"]

WRITEBACK_EVERY = 32 << 20
"""Bytes between write-back kicks while copying: the disk works while we still hash and copy."""

_FEW_FILES = 32  # up to this many, fsync each file (waits for our data only); above, one syncfs
_SYNC_FILE_RANGE_WRITE = 2

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _sync_file_range = getattr(_libc, "sync_file_range", None)
    _syncfs = getattr(_libc, "syncfs", None)
except OSError:
    _sync_file_range = _syncfs = None
if _sync_file_range is not None:
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range now, without waiting (a hint; ignored where unsupported)."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def flush(files: Iterable[Path], anchor: Path) -> None:
    """Make `files` and their folder entries durable. `anchor` is any folder on the same file system.

    A few files: fsync each, and each folder once, which waits for this registration's data only.
    Many (10,000 small files would cost 10,000 fsyncs): one syncfs of the file system.
    """
    unique = list(dict.fromkeys(files))
    if len(unique) > _FEW_FILES and _syncfs is not None:
        fd = os.open(anchor, os.O_RDONLY)
        try:
            if _syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in unique:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for folder in dict.fromkeys(path.parent for path in unique):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
