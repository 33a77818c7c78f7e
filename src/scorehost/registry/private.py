"""Workspace files that hold secrets are the owner's alone (0600), whatever the folder's mode.

The workspace database holds endpoint keys and deployments' environment values in plain text. SQLite
creates its -wal and -shm files with the database file's own mode, so creating the database 0600 (and
setting existing ones, with their companions, to 0600 on every open) keeps all three private even in
a folder that others can read. A folder that others can read or write is still worth knowing about:
`warn_if_shared` says so once per folder, with the command that fixes it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_FILE", "make_private", "private_database", "warn_if_shared"]

PRIVATE_FILE = 0o600
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")

logger = logging.getLogger("scorehost.registry")
_warned: set[Path] = set()


def make_private(path: Path) -> None:
    """Take group and other permissions off `path`, if it exists and has any."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(found.st_mode)
    if mode & 0o077 and not stat.S_ISLNK(found.st_mode):
        try:
            os.chmod(path, mode & 0o700)
        except OSError as error:  # another user's file: say so rather than fail the command
            logger.warning("%s is readable by other users and cannot be made private (%s)", path, error.strerror)


def private_database(path: Path) -> None:
    """Create the SQLite database file `path` 0600 when missing, and make it and its companions 0600.

    An existing database is never opened here: SQLite's locks are POSIX record locks, which a process loses on
    every descriptor of the file when it closes any one of them. Opening and closing the file in a process that
    already had it open (a control plane connecting a second time) would drop that process's locks, and the next
    process to close its last connection would take itself for the last one and delete the -wal file that the
    first still writes to: its later commits would be lost.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except FileNotFoundError:
        return  # no such folder: SQLite says so, with the path, when it opens it
    except OSError:
        fd = -1  # it exists (made private below, by path), or read-only or not ours: SQLite reports the rest
    if fd >= 0:
        try:
            if os.fstat(fd).st_size == 0:  # just created: the umask may have taken the owner's write bit too
                os.fchmod(fd, PRIVATE_FILE)
        finally:
            os.close(fd)
    for name in (path.name, *(path.name + suffix for suffix in _SQLITE_COMPANIONS)):
        make_private(path.with_name(name))


def warn_if_shared(folder: Path) -> None:
    """Log a warning, once per folder and process, when other users can read or write `folder`."""
    if folder in _warned:
        return
    try:
        mode = stat.S_IMODE(folder.stat().st_mode)
    except OSError:
        return
    if mode & 0o066:
        _warned.add(folder)
        logger.warning(
            "the workspace %s is readable or writable by other users (mode %03o): its files holding keys and "
            "environment values are private (0600), but others can list it and replace what is in it; make it "
            "private with `chmod 700 %s`",
            folder,
            mode,
            folder,
        )
