"""The content-addressed file store: each distinct content once, named by its sha256.

```
store/
  sha256/ab/abcdef…   read-only blobs; a name here is only ever given to complete, synced bytes
  tmp/<pid>.<id>.part copies in progress; never look valid, removed once their process is gone
  lock                flock: registrations hold it shared, reclaiming space holds it exclusive
```
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from scorehost.registry.copying import ByteProgress, copy_hashing, hash_file

__all__ = ["BlobStore", "process_alive"]

_READ_ONLY = 0o444


def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _libc_syncfs()


class BlobStore:
    """Blobs under `root`; safe for several processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "sha256"
        self.tmp = root / "tmp"
        for folder in (self.blobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def path_of(self, digest: str) -> Path:
        """Where the blob with this sha256 lives (whether or not it exists)."""
        return self.blobs / digest[:2] / digest

    def ingest(self, source: Path, progress: ByteProgress | None = None) -> tuple[str, int]:
        """Copy `source` in, hashing as it goes; returns (sha256, size). Identical content is kept once."""
        part = self.tmp / f"{os.getpid()}.{secrets.token_hex(8)}.part"
        try:
            with open(source, "rb", buffering=0) as reader, open(part, "xb", buffering=0) as writer:
                digest, size = copy_hashing(reader, writer, progress)
            part.chmod(_READ_ONLY)
            blob = self.path_of(digest)
            blob.parent.mkdir(exist_ok=True)
            # Replacing an existing blob, not keeping it: these bytes were just hashed, while a stored copy
            # may have been damaged since (re-registering the original is how a user repairs it).
            # Running servers keep their hard links to the old inode.
            os.replace(part, blob)
        finally:
            part.unlink(missing_ok=True)
        return digest, size

    def sync(self, written: Iterable[str] = ()) -> None:
        """Make everything written so far durable before the database says it exists.

        One syncfs() for the whole file system where Linux has it (10,000 small files would otherwise
        cost 10,000 fsyncs); else an fsync per blob and per folder.
        """
        fd = os.open(self.blobs, os.O_RDONLY)
        try:
            if _syncfs is not None and _syncfs(fd) == 0:
                return
            for digest in written:
                blob = self.path_of(digest)
                with open(blob, "rb") as handle:
                    os.fsync(handle.fileno())
                folder = os.open(blob.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        finally:
            os.close(fd)

    def check(self, digest: str, size: int, *, full: bool, progress: ByteProgress | None = None) -> str | None:
        """None when the blob is intact, else what is wrong. `full=False` checks presence and size only."""
        blob = self.path_of(digest)
        try:
            found_size = blob.stat().st_size
        except FileNotFoundError:
            return "missing from the store"
        if found_size != size:
            return f"size is {found_size} bytes, {size} were registered"
        if full:
            found, _ = hash_file(str(blob), progress)
            if found != digest:
                return f"sha256 is {found}, {digest} was registered"
        return None

    def digests(self) -> Iterator[str]:
        """Every blob present."""
        for folder in self.blobs.iterdir():
            for blob in folder.iterdir():
                yield blob.name

    @contextlib.contextmanager
    def registering(self) -> Iterator[None]:
        """Held while blobs are added and the version committed, so space reclaiming never races it."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._remove_stale_parts()
            yield
        finally:
            os.close(fd)  # closing releases the lock, as does the process dying

    @contextlib.contextmanager
    def reclaiming(self, *, wait: bool) -> Iterator[bool]:
        """Exclusive: no registration is in flight. Yields False when `wait` is False and one is."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def remove(self, digests: Iterable[str]) -> int:
        """Delete these blobs (call inside `reclaiming`); returns the bytes freed."""
        freed = 0
        for digest in digests:
            blob = self.path_of(digest)
            with contextlib.suppress(FileNotFoundError):
                freed += blob.stat().st_size
                blob.unlink()
        return freed

    def _remove_stale_parts(self) -> None:
        for part in self.tmp.glob("*.part"):
            pid = part.name.split(".", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                part.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as error:
        return error.errno != errno.ESRCH
    return True
