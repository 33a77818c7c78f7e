"""Writes that run out of room: what is full, where, how much was needed, and what to do.

A full disk (ENOSPC), a full quota (EDQUOT) and the process's file size limit (EFBIG, `ulimit -f`)
all stop a write in the workspace; each becomes one StorageFull whose message names the file, the
folder whose disk is full, the space free there and the fix. SQLite reports the same conditions as
"database or disk is full" or "disk I/O error" (it needs room even to open a WAL database for reading:
its -shm index); `database_error` turns those into the same message.
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from scorehost.config import format_size
from scorehost.errors import StorageFull

__all__ = ["NO_ROOM", "WORKSPACE_FIX", "database_error", "free_space", "no_room"]

NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""The errnos of a write that ran out of room."""

_SQLITE_IOERR, _SQLITE_FULL = 10, 13  # primary result codes; extended ones keep these in their low byte

WORKSPACE_FIX = (
    "Free space on that disk, or move the workspace to a larger one (SCOREHOST_HOME); `scorehost models gc` frees "
    "files no version uses and the folders of stopped servers, `scorehost models delete NAME:VERSION` a version's files"
)


def free_space(path: Path) -> int | None:
    """Bytes an unprivileged process may still write on the file system holding `path` (None if unknown)."""
    for candidate in (path, *path.parents):
        try:
            found = os.statvfs(candidate)
        except OSError:
            continue
        return found.f_bavail * found.f_frsize
    return None


def no_room(
    error: OSError, path: Path, *, what: str, needed: int | None = None, where: str | None = None, fix: str = ""
) -> StorageFull:
    """StorageFull for an OSError in NO_ROOM raised while writing `path`.

    `what` is the step, naming the file (e.g. "storing model.pkl"); `where` names the folder whose disk is full
    (default: the workspace, found above `path`); `fix` what to do (default: free space or move the workspace).
    """
    need = f" needs {format_size(needed)}," if needed is not None else ":"
    if error.errno == errno.EFBIG:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        limit = "unlimited" if soft == resource.RLIM_INFINITY else format_size(soft)
        return StorageFull(
            f"{what}{need} more than this process may write to one file: its file size limit (`ulimit -f`) is "
            f"{limit}. Raise the limit (`ulimit -f unlimited`) and try again"
        )
    free = free_space(path)
    room = f" ({format_size(free)} free)" if free is not None else ""
    full = "the disk quota on" if error.errno == errno.EDQUOT else "the disk holding"
    but = " but" if needed is not None else ""
    return StorageFull(f"{what}{need}{but} {full} {where or _workspace(path)} is full{room}. {fix or WORKSPACE_FIX}")


def _workspace(path: Path) -> str:
    """`the workspace HOME` for a path under a workspace's store/ or servers/, else the path's folder."""
    for parent in path.parents:
        if parent.name in ("store", "servers"):
            return f"the workspace {parent.parent}"
    return str(path.parent)


def database_error(error: BaseException, database: Path) -> StorageFull | None:
    """StorageFull for a SQLite error that means a write found no room (None for any other error)."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(code, int) or code & 0xFF not in (_SQLITE_FULL, _SQLITE_IOERR):
        return None
    free = free_space(database)
    if code & 0xFF == _SQLITE_IOERR and free is not None and free > (1 << 20):
        # SQLite reports EFBIG as an I/O error; with room on the disk, only the file size limit can be why.
        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] == resource.RLIM_INFINITY:
            return None  # a failing disk, not a full one: SQLite's own message says more than we could
        return no_room(OSError(errno.EFBIG, "File too large"), database, what="writing the registry database")
    room = f" ({format_size(free)} free)" if free is not None else ""
    return StorageFull(
        f"the registry database {database} cannot be used: the disk holding {database.parent} is full{room}, and "
        f"SQLite needs room there even to read (for its {database.name}-wal and -shm files). {WORKSPACE_FIX}"
    )
