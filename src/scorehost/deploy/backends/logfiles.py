"""Reading a deployment's rotated log files: the last lines across rotations, and following new ones."""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["follow", "last_lines"]

_BLOCK = 65536


def _rotated(path: Path, keep: int) -> list[Path]:
    """The log's files, oldest first: serve.log.<keep> ... serve.log.1, serve.log."""
    older = [path.with_name(f"{path.name}.{index}") for index in range(keep, 0, -1)]
    return [file for file in (*older, path) if file.exists()]


def _tail_of(fd: int, end: int, count: int) -> list[bytes]:
    """The last `count` lines of the file's first `end` bytes, reading backwards block by block."""
    data = b""
    position = end
    while position > 0 and data.count(b"\n") <= count:
        step = min(_BLOCK, position)
        position -= step
        data = os.pread(fd, step, position) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if position > 0:
        lines = lines[1:]  # the first one is cut
    return lines[-count:] if count else []


def last_lines(path: Path, keep: int, count: int) -> list[str]:
    """The last `count` lines of the log, reaching into rotated files when the current one is short."""
    found: collections.deque[bytes] = collections.deque()
    for file in reversed(_rotated(path, keep)):
        if len(found) >= count:
            break
        try:
            fd = os.open(file, os.O_RDONLY)
        except FileNotFoundError:
            continue  # rotated away meanwhile
        try:
            found.extendleft(reversed(_tail_of(fd, os.fstat(fd).st_size, count - len(found))))
        finally:
            os.close(fd)
    return [line.decode("utf-8", "replace") for line in found]


def follow(path: Path, keep: int, count: int, running: Callable[[], bool], poll: float = 0.1) -> Iterator[str]:
    """The last `count` lines, then each new line as it is written, across rotations, until
    `running()` turns false and everything written has been read."""
    fd = _open(path, running, poll)
    if fd is None:
        return
    offset = os.fstat(fd).st_size
    yield from (line.decode("utf-8", "replace") for line in _tail_of(fd, offset, count))
    pending = b""
    try:
        while True:
            alive = running()  # read before the last pass, so nothing written before it ends is missed
            chunk = os.pread(fd, _BLOCK, offset)
            if chunk:
                offset += len(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                yield from (line.decode("utf-8", "replace") for line in lines)
                continue
            if _replaced(fd, path):  # rotated: this file is complete, go on with the one written after it
                successor = _successor(fd, path, keep)
                if successor is None:
                    break
                os.close(fd)
                fd, offset = successor, 0
                continue
            if not alive:
                break
            time.sleep(poll)
    finally:
        os.close(fd)
    if pending:
        yield pending.decode("utf-8", "replace")


def _open(path: Path, running: Callable[[], bool], poll: float) -> int | None:
    while True:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if not running():
                return None
            time.sleep(poll)


def _successor(fd: int, path: Path, keep: int) -> int | None:
    """The file written after `fd`'s (rotation may have renamed several since: serve.log.1 before serve.log)."""
    inode = os.fstat(fd).st_ino
    files = _rotated(path, keep)
    inodes = [_inode(file) for file in files]
    # Rotated off the end meanwhile: continue with the oldest file left.
    later = files[inodes.index(inode) + 1 :] if inode in inodes else files
    for file in later:
        with contextlib.suppress(FileNotFoundError):
            return os.open(file, os.O_RDONLY)
    return None


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _replaced(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        return False  # between the rename and the new file's creation
