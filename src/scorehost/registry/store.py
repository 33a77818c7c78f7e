"""The content-addressed file store: each distinct content once, named by its sha256.

```
store/
  sha256/ab/abcdef…   read-only blobs; a name here is only ever given to complete, synced bytes
  tmp/<pid>.<id>.part copies in progress; never look valid, removed once their process is gone
  damaged/            blobs `verify` found damaged, moved aside (kept for inspection)
  lock                flock: registrations hold it shared, reclaiming space holds it exclusive
```
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from scorehost.registry.copying import ByteProgress, copy_hashing, hash_file
from scorehost.registry.durability import flush
from scorehost.registry.space import NO_ROOM, no_room

__all__ = ["BlobStore", "blob_path", "process_alive"]

_READ_ONLY = 0o444


def blob_path(root: Path, digest: str) -> Path:
    """Where the blob with this sha256 lives in the store at `root`, read by processes that only read it."""
    return root / "sha256" / digest[:2] / digest


class BlobStore:
    """Blobs under `root`; safe for several processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "sha256"
        self.tmp = root / "tmp"
        for folder in (self.blobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self._folders: set[Path] = set()  # blob folders known to exist

    def path_of(self, digest: str) -> Path:
        """Where the blob with this sha256 lives (whether or not it exists)."""
        return blob_path(self.root, digest)

    def ingest(self, source: Path, progress: ByteProgress | None = None) -> tuple[str, int]:
        """Copy `source` in, hashing as it goes; returns (sha256, size). Identical content is kept once."""
        part = self.tmp / f"{os.getpid()}.{secrets.token_hex(8)}.part"
        try:
            try:
                with open(source, "rb", buffering=0) as reader, open(part, "xb", buffering=0) as writer:
                    digest, size = copy_hashing(reader, writer, progress)
                    os.fchmod(writer.fileno(), _READ_ONLY)
            except OSError as error:
                if error.errno not in NO_ROOM:
                    raise
                part.unlink(missing_ok=True)  # first, so that the free space reported counts its bytes
                raise no_room(error, part, what=f"storing {source}", needed=source.stat().st_size) from None
            blob = self.path_of(digest)
            if blob.parent not in self._folders:
                blob.parent.mkdir(exist_ok=True)
                self._folders.add(blob.parent)
            try:
                os.link(part, blob)
            except FileExistsError:
                # Stored already: keep that copy (replacing it would make ext4 flush it again). One of
                # another size is damaged, so this fresh copy replaces it; damage of the same size is
                # found by verify, which moves the blob aside so the next registration stores it anew.
                if blob.stat().st_size != size:
                    os.replace(part, blob)
        finally:
            part.unlink(missing_ok=True)
        return digest, size

    def sync(self, written: Iterable[str] = ()) -> None:
        """Make the blobs just written durable before the database says they exist."""
        flush([self.path_of(digest) for digest in written], self.blobs)

    def quarantine(self, digest: str) -> Path | None:
        """Move a damaged blob to `damaged/`, out of every future layout and download; returns where."""
        damaged = self.root / "damaged"
        damaged.mkdir(exist_ok=True)
        target = damaged / f"{digest}.{int(time.time())}"
        try:
            os.rename(self.path_of(digest), target)
        except FileNotFoundError:
            return None
        return target

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
            self.remove_stale_parts()
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

    def remove_stale_parts(self, older_than: float | None = None) -> tuple[int, int]:
        """Remove scratch copies whose writer is gone, or (with `older_than`, seconds) untouched that long.

        Returns (files, bytes) removed. A live copy is written to all the time, so its age stays near 0.
        """
        removed = freed = 0
        now = time.time()
        for part in self.tmp.glob("*.part"):
            pid = part.name.split(".", 1)[0]
            try:
                found = part.stat()
            except FileNotFoundError:
                continue
            dead = pid.isdigit() and not process_alive(int(pid))
            if dead or (older_than is not None and now - found.st_mtime > older_than):
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                    removed, freed = removed + 1, freed + found.st_size
        return removed, freed


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
