"""`AppendFiles`: the data files one writer thread holds open, appended to whole rows at a time.

An append is one `os.write` (finished if the kernel takes it in parts); if it fails part-way, the file is cut back
to the last whole row it wrote, so no file ever holds half a row. Files are created `0640` and folders `0750`; a file
removed underneath (retention in another process) is created again at the next append.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["AppendFiles"]

_MAX_OPEN = 32  # a few partitions per collection at most are written at once; older handles are closed
_CREATE = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_REOPEN = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
_NOTHING_TO_SYNC = (errno.EINVAL, errno.EROFS)  # a pipe or a device


class _Open:
    __slots__ = ("dirty", "fd", "torn", "used")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dirty = False  # written since its last fsync
        self.torn = False  # a failed write could not be cut back: the next one starts a fresh line
        self.used = time.monotonic()


class AppendFiles:
    """Open files by path, least recently used first; used from one thread only."""

    def __init__(self) -> None:
        self._files: dict[Path, _Open] = {}
        self._new_folders: set[Path] = set()  # folders with a new entry: fsynced with the files

    def paths(self) -> frozenset[Path]:
        """The files open now."""
        return frozenset(self._files)

    def append(self, path: Path, lines: Sequence[bytes]) -> tuple[int, OSError | None]:
        """Append whole lines to `path` in one write: how many made it, and the error that stopped the rest.

        A write that fails part-way is cut back to the last whole line it wrote, so no half line stays."""
        try:
            handle = self._open(path)
            before = os.fstat(handle.fd)
            if before.st_nlink == 0:  # removed underneath us: these rows would go nowhere
                self._close(self._files.pop(path))
                handle = self._open(path)
                before = os.fstat(handle.fd)
        except OSError as exc:
            return 0, exc
        torn = handle.torn
        prefix = b"\n" if torn else b""  # ends the fragment a failed cut-back left, so only that line is lost
        data = prefix + b"".join(lines)
        view = memoryview(data)
        try:
            while view:
                n = os.write(handle.fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "write wrote nothing")
                view = view[n:]  # a short write: the next one says why, or finishes it
        except OSError as exc:
            done = len(data) - len(view)
            keep = len(prefix) if done >= len(prefix) else 0
            kept = 0
            for line in lines:
                if keep + len(line) > done:
                    break
                keep += len(line)
                kept += 1
            if done > keep:
                try:
                    os.ftruncate(handle.fd, before.st_size + keep)
                    handle.torn = torn and keep == 0
                except OSError:
                    handle.torn = True  # a device, say: the next append starts a fresh line
            else:
                handle.torn = torn and done == 0
            handle.dirty = handle.dirty or kept > 0
            return kept, exc
        handle.torn = False
        handle.dirty = True
        return len(lines), None

    def _open(self, path: Path) -> _Open:
        handle = self._files.pop(path, None)
        if handle is not None:
            handle.used = time.monotonic()
            self._files[path] = handle  # most recently used last
            return handle
        for attempt in range(3):
            try:
                try:
                    fd = os.open(path, _CREATE, 0o640)
                    self._new_folders.add(path.parent)
                except FileExistsError:
                    fd = os.open(path, _REOPEN)  # ours from before, or a FIFO or device put there
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self._makedirs(path.parent)  # again, if another process's retention removed it meanwhile
        handle = self._files[path] = _Open(fd)
        if len(self._files) > _MAX_OPEN:
            self._close(self._files.pop(next(iter(self._files))))
        return handle

    def _makedirs(self, folder: Path) -> None:
        missing: list[Path] = []
        while not folder.is_dir() and folder.parent != folder:
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            try:
                os.mkdir(new, 0o750)  # os.makedirs gives intermediate folders the default mode, not this one
                self._new_folders.add(new.parent)
            except FileExistsError:
                pass

    def sync(self) -> list[tuple[Path, OSError]]:
        """fsync the files written to since the last call, and the folders they were created in; the failures."""
        failed: list[tuple[Path, OSError]] = []
        for path, handle in list(self._files.items()):
            if handle.dirty:
                handle.dirty = False
                try:
                    os.fsync(handle.fd)
                except OSError as exc:
                    if exc.errno not in _NOTHING_TO_SYNC:
                        failed.append((path, exc))
        folders, self._new_folders = self._new_folders, set()
        for folder in folders:
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # removed since
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno not in _NOTHING_TO_SYNC:
                    failed.append((folder, exc))
            finally:
                os.close(fd)
        return failed

    def close_idle(self, idle_seconds: float) -> None:
        """Close the files not written to for `idle_seconds` (those of past partitions)."""
        now = time.monotonic()
        for path, handle in list(self._files.items()):
            if now - handle.used > idle_seconds:
                self._close(self._files.pop(path))

    def close_all(self) -> None:
        """fsync and close every file."""
        for path in list(self._files):
            self._close(self._files.pop(path))

    @staticmethod
    def _close(handle: _Open) -> None:
        if handle.dirty:
            with contextlib.suppress(OSError):
                os.fsync(handle.fd)
        with contextlib.suppress(OSError):
            os.close(handle.fd)
