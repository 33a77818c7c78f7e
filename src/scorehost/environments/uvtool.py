"""Running uv: where its executable is, and a run whose output goes line by line to a log and a callback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from scorehost.errors import EnvironmentProblem

__all__ = ["error_text", "find_uv", "run_uv", "uv_environ"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_ERROR_START = re.compile(r"^\s*(error:|×|╰─▶)")


def find_uv() -> Path:
    """The uv beside scorehost's interpreter, else the `uv` package's binary, else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    on_path = shutil.which("uv")
    if on_path:
        return Path(on_path)
    raise EnvironmentProblem("uv is not installed, and scorehost builds environments with it; pip install uv")


def uv_environ() -> dict[str, str]:
    """The environment uv runs in: plain text, no interpreter downloads, no virtual environment of ours."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(NO_COLOR="1", UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    return env


def run_uv(
    args: list[str],
    *,
    cwd: Path,
    log: TextIO,
    progress: Callable[[str], None] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> tuple[int, list[str]]:
    """Run `uv ARGS`; each line of its output (stdout and stderr, ANSI codes removed) goes to `log` and `progress`.
    `pass_fds` are inherited by uv. Returns the exit status and the lines."""
    command = [str(find_uv()), *args]
    log.write(f"$ uv {' '.join(args)}\n")
    log.flush()
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=uv_environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        pass_fds=pass_fds,
    ) as process:
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = _ANSI.sub("", raw.rstrip("\n")).rstrip("\r")
                lines.append(line)
                log.write(line + "\n")
                log.flush()
                if progress is not None and line.strip():
                    progress(line.strip())
        except BaseException:  # KeyboardInterrupt, a failing progress callback: uv must not outlive the build
            process.kill()
            raise
        code = process.wait()
    log.write(f"(exit status {code})\n")
    log.flush()
    return code, lines


def error_text(lines: list[str], limit: int = 40) -> list[str]:
    """uv's error: from its first `error:` (or `×`, `╰─▶`) line on, at most `limit` lines."""
    for index, line in enumerate(lines):
        if _ERROR_START.match(line):
            return [line.rstrip() for line in lines[index : index + limit] if line.strip()]
    return [line.rstrip() for line in lines[-limit:] if line.strip()]
