"""Building environments with uv, once per key, into `<home>/environments/<key>/`.

A build holds `<key>.lock` (flock), so a second process or thread asking for the same key waits and then finds it
ready. `environment.json`, written last and atomically, marks a folder ready; a folder without it is a build that
was killed, removed and built again. A failed build leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from scorehost.environments.interpreters import choose_python
from scorehost.environments.pep508 import parse_requirement
from scorehost.environments.runtime import OVERRIDES, PTH_NAME, runtime_folder
from scorehost.environments.spec import EnvironmentSpec
from scorehost.environments.uvtool import error_text, run_uv
from scorehost.errors import EnvironmentBuildFailed, PythonNotFound
from scorehost.private_files import write_private
from scorehost.timestamps import iso_utc, parse_iso_utc

__all__ = ["BuiltEnvironment", "ensure_environment", "environment_lock", "environments_folder", "find_environment"]

READY_MARKER = "environment.json"


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready environment: its folder, its interpreter and what uv installed in it."""

    key: str
    path: Path
    python: Path
    python_version: str
    packages: dict[str, str] = field(default_factory=dict, hash=False)
    created_at: str = ""
    size_bytes: int = 0
    spec: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    warnings: tuple[str, ...] = ()
    base_python: str = ""
    build_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "python": str(self.python),
            "python_version": self.python_version,
            "base_python": self.base_python,
            "created_at": self.created_at,
            "build_seconds": self.build_seconds,
            "size_bytes": self.size_bytes,
            "warnings": list(self.warnings),
            "spec": self.spec.to_json(),
            "packages": dict(sorted(self.packages.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> BuiltEnvironment:
        return cls(
            key=str(data["key"]),
            path=path,
            python=path / "venv" / "bin" / "python",
            python_version=str(data["python_version"]),
            packages={str(name): str(version) for name, version in data.get("packages", {}).items()},
            created_at=_shown_time(str(data.get("created_at", ""))),
            size_bytes=int(data.get("size_bytes", 0)),
            spec=EnvironmentSpec.from_json(data.get("spec", {})),
            warnings=tuple(data.get("warnings", ())),
            base_python=str(data.get("base_python", "")),
            build_seconds=float(data.get("build_seconds", 0.0)),
        )


def _shown_time(text: str) -> str:
    """`created_at` as every time scorehost shows (environments built before that was so say `+00:00`)."""
    try:
        return iso_utc(parse_iso_utc(text))
    except ValueError:
        return text


def environments_folder(home: Path) -> Path:
    """`<home>/environments`: one folder per key, its `<key>.lock`, and `runtime/`."""
    return Path(home) / "environments"


def find_environment(home: Path, key: str) -> BuiltEnvironment | None:
    """The ready environment of `key`, or None (never built, being built, or half built)."""
    folder = environments_folder(home) / key
    try:
        data = json.loads((folder / READY_MARKER).read_text(encoding="utf-8"))
        built = BuiltEnvironment.from_json(data, folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return built if built.key == key and built.python.exists() else None


@contextlib.contextmanager
def environment_lock(
    home: Path, key: str, *, wait: bool = True, progress: Callable[[str], None] | None = None
) -> Iterator[int | None]:
    """Hold `<key>.lock`: yields its descriptor, or None (holding nothing) when `wait` is False and another holds
    it. The holder may unlink the lock file (prune does): a waiter that then gets the unlinked file's lock tries
    again. A process that inherits the descriptor holds the lock too, until it exits."""
    folder = environments_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.lock"
    told = False
    while True:
        # One open file each: flock locks belong to an open file, so threads of one process exclude each other too.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield None
                    return
                if progress is not None and not told:
                    progress(f"waiting for another build of environment {key}")
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield fd
                return
        finally:
            os.close(fd)  # releases the lock


def ensure_environment(
    spec: EnvironmentSpec,
    home: Path,
    *,
    nearest_python: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BuiltEnvironment:
    """The built environment of `spec`: found ready, or built now (once, however many ask at the same time).
    `progress` receives uv's output line by line while it builds."""
    key = spec.key()
    built = find_environment(home, key)
    if built is None:
        with environment_lock(home, key, progress=progress) as lock:
            assert lock is not None
            built = find_environment(home, key) or _build(spec, key, Path(home), nearest_python, progress, lock)
    runtime_folder(Path(home))  # mends the symlink each environment's .pth leads to, if it was removed
    return built


def _build(
    spec: EnvironmentSpec,
    key: str,
    home: Path,
    nearest_python: bool,
    progress: Callable[[str], None] | None,
    lock: int,
) -> BuiltEnvironment:
    folder = environments_folder(home) / key
    if folder.exists():  # a build that was killed half-way: no ready marker
        shutil.rmtree(folder)
    source = spec.source or "the environment"
    try:
        interpreter = choose_python(spec.python, nearest=nearest_python)
    except PythonNotFound as error:
        raise PythonNotFound(f"{source}: {error.message}") from None
    warnings = spec.warnings()
    if spec.python is not None and not _same_version(interpreter.version, spec.python):
        warnings.append(
            f"the environment asks for Python {spec.python}; built with {interpreter.version} "
            f"({interpreter.path}), the nearest that scorehost's runtime supports"
        )
    started = time.monotonic()
    folder.mkdir(parents=True)
    try:
        runtime = runtime_folder(home)
        requirements = [*spec.requirements, *spec.runtime_requirements()]
        (folder / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        python = folder / "venv" / "bin" / "python"
        with open(folder / "build.log", "w", encoding="utf-8") as log:
            if progress is not None:
                progress(f"creating a Python {interpreter.version} environment for {source}")
            # uv holds the lock too (it inherits the descriptor): if this process is killed, uv goes on writing in
            # the folder, and the next build must wait for it to end before removing what it left.
            uv = functools.partial(_uv, spec, cwd=folder, log=log, lock=lock)
            uv(["venv", "--python", str(interpreter.path), str(folder / "venv")], progress=progress)
            (folder / "overrides.txt").write_text("\n".join(OVERRIDES) + "\n", encoding="utf-8")
            install = ["pip", "install", "--python", str(python), "-r", str(folder / "requirements.txt")]
            install += ["--override", str(folder / "overrides.txt")]
            uv([*install, *spec.index_options], progress=progress)
            major_minor = ".".join(interpreter.version.split(".")[:2])
            site_packages = folder / "venv" / "lib" / f"python{major_minor}" / "site-packages"
            (site_packages / PTH_NAME).write_text(f"{runtime}\n", encoding="utf-8")
            frozen = uv(["pip", "freeze", "--python", str(python)], progress=None)
        built = BuiltEnvironment(
            key=key,
            path=folder,
            python=python,
            python_version=interpreter.version,
            packages=_packages(frozen),
            created_at=iso_utc(time.time()),
            size_bytes=disk_size(folder),
            spec=spec,
            warnings=tuple(warnings),
            base_python=str(interpreter.path),
            build_seconds=round(time.monotonic() - started, 2),
        )
        write_private(folder / READY_MARKER, json.dumps(built.to_json(), indent=2).encode())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return built


def _uv(
    spec: EnvironmentSpec,
    args: list[str],
    *,
    cwd: Path,
    log: TextIO,
    lock: int,
    progress: Callable[[str], None] | None,
) -> list[str]:
    code, lines = run_uv(args, cwd=cwd, log=log, progress=progress, pass_fds=(lock,))
    if code != 0:
        text = error_text(lines)
        head = f"{spec.source or 'the environment'}: uv could not build the environment (uv {' '.join(args[:2])}):"
        raise EnvironmentBuildFailed("\n".join([head, *text, *_runtime_conflicts(spec, text)]))
    return lines


def _runtime_conflicts(spec: EnvironmentSpec, text: list[str]) -> list[str]:
    """A line for each of scorehost's runtime requirements that uv's error names with a version."""
    joined = "\n".join(text)
    declared = {}
    for line in spec.requirements:
        with contextlib.suppress(ValueError):
            declared[parse_requirement(line).name] = line
    lines = []
    for runtime in spec.runtime_requirements():
        name = parse_requirement(runtime).name
        spelled = "[-_.]".join(re.escape(part) for part in name.split("-"))
        if re.search(rf"(?<![\w.-]){spelled}(\[[^\]]*\])?\s*(===|==|!=|<=|>=|~=|<|>)", joined, re.IGNORECASE):
            lines.append(
                f"scorehost's runtime needs {runtime}: the environment cannot pin {declared.get(name, name)} outside it"
            )
    return lines


def _same_version(version: str, requested: str) -> bool:
    if not requested[0].isdigit():
        return True  # a range it was chosen to satisfy
    return version.split(".")[: len(requested.split("."))] == requested.split(".")


def _packages(frozen: list[str]) -> dict[str, str]:
    packages = {}
    for line in frozen:
        name, separator, version = line.partition("==")
        if not separator:
            name, separator, version = line.partition(" @ ")
        if separator and not line.startswith(("-", "#", "$", "(")):
            packages[name.strip()] = version.strip()
    return packages


def disk_size(folder: Path) -> int:
    """Bytes of the files under `folder`, each file once (hard links to uv's cache are counted as if copied)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(root, name))
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
    return total
