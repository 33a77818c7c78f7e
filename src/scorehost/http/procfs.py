"""What Linux says about a worker from outside it: its state, its resident memory, and out-of-memory kills.

The supervisor reads these to say why a worker stopped answering or died; everything returns None (or 0)
where the files are missing (not Linux, a sandbox that hides them), and the supervisor then says less.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from scorehost.system import process_state

__all__ = ["oom_kills", "process_state", "resident_bytes"]

_PROC = Path("/proc")
_CGROUPS = Path("/sys/fs/cgroup")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int, proc: Path = _PROC) -> int | None:
    """The process's resident set size (RSS), from /proc/PID/statm."""
    try:
        fields = (proc / str(pid) / "statm").read_text().split()
        return int(fields[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def oom_kills(proc: Path = _PROC, cgroups: Path = _CGROUPS) -> int:
    """How many processes the out-of-memory killer has killed, as counted where this process lives.

    The sum of the counts of this process's memory cgroup and its ancestors (v2: `memory.events`, v1:
    `memory.oom_control`), so that a kill under a limit set on any of them shows; where no cgroup says, the
    kernel's system-wide count (/proc/vmstat). Only its growth means anything: compare two readings.
    """
    counts = [count for path in _oom_counters(proc, cgroups) if (count := _count(path, "oom_kill")) is not None]
    if counts:
        return sum(counts)
    return _count(proc / "vmstat", "oom_kill") or 0


def _oom_counters(proc: Path, cgroups: Path) -> Iterator[Path]:
    """The files that count OOM kills for this process's memory cgroup, then for each ancestor up to the root."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        _, controllers, path = parts
        if controllers == "":  # v2 (unified): mounted at the root, or beside the v1 hierarchies (hybrid)
            bases, name = [cgroups, cgroups / "unified"], "memory.events"
        elif "memory" in controllers.split(","):  # v1
            bases, name = [cgroups / "memory"], "memory.oom_control"
        else:
            continue
        folder = PurePosixPath(path)
        for level in [folder, *folder.parents]:
            for base in bases:
                yield base / str(level).lstrip("/") / name


def _count(path: Path, key: str) -> int | None:
    """The value of `key` in a file of "key value" lines."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None
