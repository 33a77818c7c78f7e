"""A deployment's log writer: copies a `scorehost serve` process's output into size-rotated files.

Run as its own small process (`python -I -S logwriter.py PATH MAX_BYTES KEEP`, standard library only,
no scorehost import) reading the serve process's stdout+stderr on its stdin, and exits at end of input,
i.e. once the serve process and all its workers are gone. It is a sibling of the serve process, not
part of the control plane, so the serve process keeps running and logging while the control plane
restarts; and the file is rotated by the only process writing it, so no line is lost or split.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["rotate", "write_log"]

_CHUNK = 65536


def rotate(path: Path, keep: int) -> None:
    """serve.log -> serve.log.1 -> ... -> serve.log.<keep>; the oldest falls off."""
    for index in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


def write_log(source: int, path: Path, max_bytes: int, keep: int) -> None:
    """Copy `source` (a file descriptor) into `path` until end of input, rotating past `max_bytes`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    size = os.fstat(fd).st_size
    while chunk := os.read(source, _CHUNK):
        while size + len(chunk) > max_bytes and keep > 0:
            # Rotate at a line boundary that fits: whole lines close the old file, the rest opens the new.
            cut = chunk.rfind(b"\n", 0, max(max_bytes - size, 0)) + 1
            if cut == 0 and size == 0:
                cut = max_bytes  # one line longer than a whole file: split it
            os.write(fd, chunk[:cut])
            chunk = chunk[cut:]
            os.close(fd)
            rotate(path, keep)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            size = 0
        os.write(fd, chunk)
        size += len(chunk)
    os.close(fd)


if __name__ == "__main__":
    write_log(sys.stdin.fileno(), Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
