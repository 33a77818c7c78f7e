"""Copy a file and compute its sha256 in the same pass over the data.

Each chunk is hashed on a helper thread while the main thread writes it: hashlib and file writes both
release the GIL, so a large copy takes about max(hash, write) per chunk instead of their sum.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Protocol

from scorehost.registry.durability import WRITEBACK_EVERY, start_writeback

__all__ = ["CHUNK", "ByteProgress", "copy_hashing", "hash_file"]

CHUNK = 4 << 20
_SMALL = 1 << 20  # below this, a thread hand-off costs more than it saves

_hasher: ThreadPoolExecutor | None = None
_buffers = threading.local()


class ByteProgress(Protocol):
    """Told how many bytes each step moved (a progress bar, or nothing)."""

    def advance(self, count: int) -> None: ...


def _pool() -> ThreadPoolExecutor:
    global _hasher
    if _hasher is None:
        _hasher = ThreadPoolExecutor(1, thread_name_prefix="scorehost-sha256")
    return _hasher


def _buffer() -> memoryview:
    # One buffer per thread, reused: allocating 4 MiB per file would cost more than copying a small one.
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(CHUNK))
    return view


def copy_hashing(source: BinaryIO, target: BinaryIO | None, progress: ByteProgress | None = None) -> tuple[str, int]:
    """Copy `source` to `target` (or only read it, when None); returns (sha256 hex, bytes).

    While copying, the target's pages are handed to the disk every WRITEBACK_EVERY bytes, so the
    flush that follows finds little left to write.
    """
    digest = hashlib.sha256()
    view = _buffer()
    size = 0
    kicked = 0
    while True:
        count = source.readinto(view)  # type: ignore[attr-defined]
        if not count:
            break
        chunk = view[:count]
        if count < _SMALL or target is None:
            digest.update(chunk)
            if target is not None:
                _write_all(target, chunk)
        else:
            hashed = _pool().submit(digest.update, chunk)
            try:
                _write_all(target, chunk)
            finally:
                hashed.result()  # never leave the helper thread hashing a buffer the next read overwrites
        size += count
        if target is not None and size - kicked >= WRITEBACK_EVERY:
            start_writeback(target.fileno(), kicked, size - kicked)
            kicked = size
        if progress is not None:
            progress.advance(count)
    return digest.hexdigest(), size


def _write_all(target: BinaryIO, chunk: memoryview) -> None:
    # An unbuffered file may write less than asked (at a file size limit, or as a disk fills): the rest is
    # written again, which raises the error (EFBIG, ENOSPC) instead of storing a short file under a full hash.
    written = 0
    while written < len(chunk):
        written += target.write(chunk[written:])


def hash_file(path: str, progress: ByteProgress | None = None) -> tuple[str, int]:
    """(sha256 hex, bytes) of the file at `path`."""
    with open(path, "rb", buffering=0) as source:
        return copy_hashing(source, None, progress)
