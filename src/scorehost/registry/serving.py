"""A folder of its own for each server: files a script may change without reaching the store or another server.

```
servers/<pid>.<token>/
  lock                           flock, held shared by the server (and its forked workers) while it runs
  models/<name>/<version>/...    the AZUREML_MODEL_DIR tree, each file a reflink or a copy of its blob, 0444
```

A hard link into the store would hand the script the stored bytes themselves (a script running as root
ignores file modes), and a shared folder would show one server's writes to the next. So each file is a
reflink (FICLONE: a copy-on-write clone, instant and free of space, on btrfs, XFS, bcachefs) or, where
the file system has none, a copy made in the kernel (copy_file_range). docs/registry.md has the measured costs.
The folder is removed when its server exits; one whose server died (its pid is gone and nothing holds
its lock) is reclaimed when the next server starts and by `scorehost models gc`.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

from scorehost.errors import CorruptModel
from scorehost.registry.layout import safe_join
from scorehost.registry.records import ModelVersion, StoredFile
from scorehost.registry.space import NO_ROOM, no_room
from scorehost.registry.store import BlobStore, process_alive

__all__ = ["FICLONE", "ServerFolders", "clone"]

FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h; the os and fcntl modules do not name it
_NO_REFLINK = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM})
_READ_ONLY = 0o444

_held: dict[Path, int] = {}  # folder -> fd of its lock, held (and inherited by forked workers) until released


def clone(blob: Path, target: Path) -> bool:
    """Make `target` a reflink of `blob` where the file system can, else a copy; True when it was a reflink."""
    with open(blob, "rb") as source, open(target, "xb") as clone_file:
        try:
            fcntl.ioctl(clone_file.fileno(), FICLONE, source.fileno())
        except OSError as error:
            if error.errno not in _NO_REFLINK:
                raise
        else:
            return True
        try:
            _copy_in_kernel(source.fileno(), clone_file.fileno(), os.fstat(source.fileno()).st_size)
            return False
        except OSError as error:
            if error.errno not in _NO_REFLINK:
                raise
    shutil.copyfile(blob, target)  # sendfile, or plain reads and writes where even that is missing
    return False


def _copy_in_kernel(source: int, target: int, size: int) -> None:
    # copy_file_range: measured faster than sendfile on ext4 (docs/registry.md), and a reflink on XFS and NFS 4.2.
    copied = 0
    while copied < size:
        count = os.copy_file_range(source, target, size - copied)
        if count == 0:
            raise OSError(errno.EINVAL, "the file shrank while it was copied")
        copied += count


class ServerFolders:
    """The per-server folders under `root`."""

    def __init__(self, root: Path, store: BlobStore) -> None:
        self.root = root
        self.store = store

    def create(self, chosen: Sequence[tuple[ModelVersion, Sequence[StoredFile]]]) -> Path:
        """A new folder for this process holding `chosen`; returns the AZUREML_MODEL_DIR inside it.

        `<name>/<version>` for one version, the folder of all for several. The folder is removed when this
        process exits (or on `release`); forked children keep it alive while they live.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f"{os.getpid()}.{secrets.token_hex(4)}"
        folder.mkdir()
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held[folder] = fd
        try:
            self._fill(folder, chosen)
        except BaseException:
            self.release(folder)
            raise
        atexit.register(self._release_at_exit, folder, os.getpid())
        models = folder / "models"
        if len(chosen) == 1:
            return models / chosen[0][0].name / str(chosen[0][0].version)
        return models

    def _fill(self, folder: Path, chosen: Sequence[tuple[ModelVersion, Sequence[StoredFile]]]) -> None:
        total = sum(item.size for _, stored in chosen for item in stored)
        for version, stored in chosen:
            version_folder = folder / "models" / version.name / str(version.version)
            for item in stored:
                problem = self.store.check(item.digest, item.size, full=False)
                if problem:
                    raise CorruptModel(
                        f"{version.ref} {item.path}: {problem}; run `scorehost models verify` and "
                        "register the model again from its original files"
                    )
                target = safe_join(version_folder, item.path)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    clone(self.store.path_of(item.digest), target)
                except OSError as error:
                    if error.errno not in NO_ROOM:
                        raise
                    target.unlink(missing_ok=True)
                    what = f"copying {version.ref} {item.path} into this server's own folder"
                    if total > item.size:
                        what += f" ({total} bytes for all its models)"
                    raise no_room(error, target, what=what, needed=item.size) from None
                target.chmod(_READ_ONLY)
        # What it serves, for people looking at the folder (nothing reads it back).
        refs = [{"name": v.name, "version": v.version, "sha256": v.digest} for v, _ in chosen]
        (folder / "refs.json").write_text(json.dumps(refs))

    def release(self, folder: Path) -> None:
        """Remove a folder this process created, and let go of its lock."""
        shutil.rmtree(folder, ignore_errors=True)
        fd = _held.pop(folder, None)
        if fd is not None:
            os.close(fd)

    def _release_at_exit(self, folder: Path, owner: int) -> None:
        if os.getpid() == owner:  # a forked worker that exits normally must not take its server's folder
            self.release(folder)

    def reclaim(self) -> int:
        """Remove the folders of servers that are gone; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return removed
        for folder in self.root.iterdir():
            pid = folder.name.split(".", 1)[0]
            if folder in _held or (pid.isdigit() and process_alive(int(pid))):
                continue
            if _unused(folder / "lock"):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _unused(lock: Path) -> bool:
    """Whether no process holds `lock` (a server's workers may outlive it for a moment, holding it)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True  # a folder whose server died while creating it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remove_old_layouts(root: Path) -> int:
    """Remove the shared `layouts/` folders earlier scorehost versions built, unless an old server holds one."""
    removed = 0
    if not root.is_dir():
        return removed
    for layout in root.iterdir():
        if _unused(layout / "refs.json"):
            shutil.rmtree(layout, ignore_errors=True)
            removed += 1
    with contextlib.suppress(OSError):
        root.rmdir()
    return removed
