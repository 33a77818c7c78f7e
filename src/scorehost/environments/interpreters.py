"""The Python interpreters on this machine, and the one an environment is built with.

Never downloads one: what uv knows of, pyenv's versions, /usr/bin and /usr/local/bin, and scorehost's own.
scorehost's runtime (imported inside every environment) needs Python 3.11 or newer.
"""

from __future__ import annotations

import contextlib
import glob
import json
import operator as op
import os
import platform
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from scorehost.errors import PythonNotFound

__all__ = ["MINIMUM_PYTHON", "Interpreter", "choose_python", "find_interpreters", "own_interpreter"]

MINIMUM_PYTHON = (3, 11)
_MINIMUM = ".".join(map(str, MINIMUM_PYTHON))
_PLACES = ("~/.pyenv/versions/*/bin/python3", "/usr/bin/python3.*", "/usr/local/bin/python3.*")
# Runs on Python 2 too, so that every interpreter found can be asked.
_ASK = "import platform, sys; sys.stdout.write(platform.python_implementation() + ' ' + platform.python_version())"


@dataclass(frozen=True)
class Interpreter:
    """A CPython interpreter: its full version ("3.11.7") and its real path (symlinks resolved)."""

    version: str
    path: Path

    @property
    def parts(self) -> tuple[int, ...]:
        return _parts(self.version)

    @property
    def minor_version(self) -> str:
        """ "3.11" of "3.11.7": what an environment's specification pins."""
        return ".".join(map(str, self.parts[:2]))

    def __str__(self) -> str:
        return f"{self.version} ({self.path})"


def own_interpreter() -> Interpreter:
    """The interpreter scorehost runs on (the base one, when that is a virtual environment's)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Interpreter(platform.python_version(), Path(os.path.realpath(base)))


def find_interpreters(*, ask_uv: bool = True) -> list[Interpreter]:
    """Every CPython interpreter found, newest first, each real path once; `ask_uv=False` leaves out what only
    `uv python list` knows of (it takes most of the time: it runs every shim on PATH)."""
    found: dict[Path, str] = {}
    own = own_interpreter()
    found[own.path] = own.version
    for version, path in _from_uv() if ask_uv else ():
        found.setdefault(path, version)
    places = [Path(os.path.realpath(hit)) for place in _PLACES for hit in glob.glob(os.path.expanduser(place))]
    unknown = sorted({path for path in places if path not in found and re.search(r"python[\d.]*$", path.name)})
    with ThreadPoolExecutor(max_workers=8) as pool:
        for path, version in zip(unknown, pool.map(_ask, unknown), strict=True):
            if version:
                found[path] = version
    return sorted((Interpreter(v, p) for p, v in found.items()), key=lambda i: (i.parts, str(i.path)), reverse=True)


def choose_python(requested: str | None, *, nearest: bool = False) -> Interpreter:
    """The interpreter to build an environment asking for `requested` ("3.11", "3.11.4", ">=3.8"; None: scorehost's
    own version); `nearest` takes the closest one 3.11 or newer when there is none of that version."""
    own = own_interpreter()
    if requested is None:
        return own
    for ask_uv in (False, True):  # the usual places first: a match there spares the slow `uv python list`
        found = find_interpreters(ask_uv=ask_uv)
        usable = [i for i in found if i.parts[:2] >= MINIMUM_PYTHON]
        matching = [i for i in usable if _matches(i.parts, requested)]
        if matching:  # scorehost's own interpreter if it matches, else the newest patch release of the newest match
            return max(matching, key=lambda i: (i == own, i.parts))
    floor = max(_floor(requested), MINIMUM_PYTHON)
    above = [i for i in usable if i.parts[:2] >= floor[:2]]
    closest = None
    if above:  # the nearest minor version; in it, scorehost's own interpreter or the newest patch release
        lowest = min(i.parts[:2] for i in above)
        closest = max((i for i in above if i.parts[:2] == lowest), key=lambda i: (i == own, i.parts))
    if nearest and closest is not None:
        return closest
    here = ", ".join(map(str, sorted(found, key=lambda i: i.parts))) or "none"
    instead = f"pass --nearest-python to build it with {closest.version}" if closest is not None else ""
    if _below_minimum(requested):
        problem = f"the environment asks for Python {requested}, but scorehost's runtime needs {_MINIMUM} or newer"
        fix = instead or f"install one with `uv python install {_MINIMUM}`"
    else:
        problem = f"the environment asks for Python {requested}, and there is no interpreter of that version"
        fix = f"install one with `uv python install {'.'.join(map(str, floor[:2]))}`" + (
            f", or {instead}" if instead else ""
        )
    raise PythonNotFound(f"{problem}; interpreters here: {here} — {fix}")


_uv_seen: tuple[float, list[tuple[str, Path]]] = (-1e9, [])
_UV_FRESH_SECONDS = 60  # `uv python list` takes a second here; what it reports changes when a person installs one


def _from_uv() -> list[tuple[str, Path]]:
    global _uv_seen
    if time.monotonic() - _uv_seen[0] > _UV_FRESH_SECONDS:
        _uv_seen = (time.monotonic(), _ask_uv())
    return _uv_seen[1]


def _ask_uv() -> list[tuple[str, Path]]:
    from scorehost.environments.uvtool import find_uv

    command = [str(find_uv()), "python", "list", "--only-installed", "--output-format", "json"]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        # stderr: uv warns about shims it could not run (pyenv's, for versions not selected); not our concern
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, check=False)
        entries = json.loads(done.stdout or "[]")
        return [
            (str(entry["version"]), Path(os.path.realpath(entry["path"])))
            for entry in entries
            if entry.get("implementation") == "cpython" and "/shims/" not in str(entry.get("path"))
        ]
    return []


def _ask(path: Path) -> str:
    try:
        command = [str(path), "-S", "-E", "-c", _ASK]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    implementation, _, version = done.stdout.partition(" ")
    return version if done.returncode == 0 and implementation == "CPython" else ""


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def _matches(parts: tuple[int, ...], requested: str) -> bool:
    """`requested` is a version prefix ("3.11") or a specifier (">=3.8,<3.13")."""
    if requested[0].isdigit():
        wanted = _parts(requested)
        return parts[: len(wanted)] == wanted
    for clause in requested.split(","):
        match = re.fullmatch(r"\s*(==|!=|<=|>=|<|>|~=)\s*([\d.]+)(\.\*)?\s*", clause)
        if not match:
            return False
        operator, wanted = match.group(1), _parts(match.group(2))
        mine = parts[: len(wanted)] if match.group(3) or operator in ("==", "!=") else parts
        if not _compare(mine, operator, wanted):
            return False
    return True


def _compare(mine: tuple[int, ...], operator: str, wanted: tuple[int, ...]) -> bool:
    if operator == "~=":
        return mine >= wanted and mine[: len(wanted) - 1] == wanted[:-1]
    compare = {"==": op.eq, "!=": op.ne, "<=": op.le, ">=": op.ge, "<": op.lt, ">": op.gt}[operator]
    return bool(compare(mine, wanted))


def _floor(requested: str) -> tuple[int, ...]:
    """The lowest version `requested` allows, as far as a version prefix or its >=, ==, ~= clauses say."""
    if requested[0].isdigit():
        return _parts(requested)
    bounds = [_parts(m) for m in re.findall(r"(?:>=|==|~=|>)\s*([\d.]+)", requested)]
    return max(bounds) if bounds else (0,)


def _below_minimum(requested: str) -> bool:
    """Whether every version `requested` allows is older than scorehost's runtime supports."""
    if requested[0].isdigit():
        return _parts(requested)[:2] < MINIMUM_PYTHON
    newer = ((3, minor, patch) for minor in range(MINIMUM_PYTHON[1], 40) for patch in (0, 99))
    return not any(_matches(version, requested) for version in newer)
