"""`--reload`: which files of the entry script's folder changed, found by polling their modification times.

Polling, not inotify: a scan of a script's folder takes well under a millisecond, works on every file system
(network shares and container mounts included, where inotify says nothing), and needs no dependency. Only the
files a change of which can change the answers are watched: Python code, and the configuration and model files
beside it. Caches (`__pycache__`), version control, virtual environments, hidden files and editors' temporary
files are not, nor data the script or scorehost writes (logs, collected data, CSV).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["WATCHED_SUFFIXES", "SourceWatcher", "is_code"]

logger = logging.getLogger("scorehost.supervisor")

WATCHED_SUFFIXES = frozenset(
    {
        ".py",
        # configuration, API documents (swagger*.json)
        ".json",
        ".yaml",
        ".yml",
        ".toml",
        ".cfg",
        ".ini",
        # model files
        ".pkl",
        ".pickle",
        ".joblib",
        ".onnx",
        ".pt",
        ".pth",
        ".safetensors",
        ".bin",
        ".h5",
        ".keras",
        ".pb",
        ".npy",
        ".npz",
        ".model",
        ".ubj",
        ".cbm",
    }
)
_SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "mlruns"})
_TEMPORARY_SUFFIXES = (".swp", ".swo", ".swx", ".tmp", ".bak", "~")
MAX_ENTRIES = 10_000  # per scan: a folder that holds a data set is not scanned to its end twice a second

Snapshot = dict[str, tuple[int, int, int]]  # relative path: (mtime in ns, size, inode)


def is_code(path: str) -> bool:
    """Whether a changed path is Python code (what init() does not write)."""
    return path.endswith(".py")


class SourceWatcher:
    """The watched files under `folder`; `changes()` says which changed since it was last called."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._warned = False
        self._seen = self._scan()

    def changes(self) -> list[str]:
        """Paths (relative to the folder) created, changed or removed since the last call, sorted."""
        now = self._scan()
        changed = [path for path in now.keys() | self._seen.keys() if now.get(path) != self._seen.get(path)]
        self._seen = now
        return sorted(changed)

    @property
    def watched(self) -> int:
        """How many files the last scan found."""
        return len(self._seen)

    def _scan(self) -> Snapshot:
        found: Snapshot = {}
        budget = MAX_ENTRIES
        folders = [self.folder]
        while folders and budget > 0:
            folder = folders.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError:  # removed while we looked, or not readable: nothing of it to watch
                continue
            budget -= len(entries)
            for entry in entries:
                name = entry.name
                if name.startswith((".", "#")) or name.endswith(_TEMPORARY_SUFFIXES):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name not in _SKIPPED_FOLDERS and not os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                            folders.append(Path(entry.path))
                        continue
                    if os.path.splitext(name)[1].lower() not in WATCHED_SUFFIXES:
                        continue
                    info = entry.stat()  # through a symbolic link: a model linked into the folder counts
                except OSError:
                    continue
                found[os.path.relpath(entry.path, self.folder)] = (info.st_mtime_ns, info.st_size, info.st_ino)
        if folders and not self._warned:  # folders left unscanned
            self._warned = True
            logger.warning(
                "--reload: %s holds more than %d files; changes past them are not seen (keep data sets out of the "
                "script's folder)",
                self.folder,
                MAX_ENTRIES,
            )
        return found
