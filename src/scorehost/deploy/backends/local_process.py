"""The local backend's processes: starting `scorehost serve` with its log writer, recognising it again,
probing it, and ending it with every worker it forked.

A serve process is started in its own session (so a Ctrl-C in the terminal of the CLI that started the
control plane does not reach it) and carries a random token in its environment; its workers inherit
both. The token is how we recognise our processes later, from another control-plane process, without
trusting a pid that the kernel may have handed to someone else meanwhile.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scorehost.url_handoff import pipe_url

__all__ = [
    "TOKEN_VARIABLE",
    "AdoptedProcess",
    "ChildProcess",
    "Exit",
    "Launch",
    "carries_token",
    "is_ours",
    "kill_leftovers",
    "probe_ready",
    "runtime_dir",
    "spawn",
]

TOKEN_VARIABLE = "SCOREHOST_DEPLOYMENT_TOKEN"
EXIT_USAGE = 2  # click: serve refused its options
EXIT_STARTUP = 3  # serve: the entry script cannot be served
_WRITER = Path(__file__).with_name("logwriter.py")
# The control plane's own serve settings must not leak into a deployment: its spec says what it gets.
_NOT_INHERITED = ("SCOREHOST_", "AZUREML_", "AML_", "SERVICE_")
_NOT_INHERITED_NAMES = frozenset({"SERVER_PORT", "WORKER_COUNT", "WORKER_PRELOAD", "SCORING_TIMEOUT_MS"})


@dataclass(frozen=True, slots=True)
class Exit:
    """How a serve process ended: its exit code (negative: the signal), None when it was not our child."""

    code: int | None

    @property
    def startup_error(self) -> bool:
        return self.code in (EXIT_USAGE, EXIT_STARTUP)

    def describe(self) -> str:
        if self.code is None:
            return "exited (its exit status is unknown: an earlier control plane started it)"
        if self.code < 0:
            try:
                return f"killed by {signal.Signals(-self.code).name}"
            except ValueError:
                return f"killed by signal {-self.code}"
        if self.code == EXIT_STARTUP:
            return "exited with code 3: the entry script cannot be served"
        if self.code == EXIT_USAGE:
            return "exited with code 2: `scorehost serve` refused its options"
        return f"exited with code {self.code}"


def inherited_environ() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_NOT_INHERITED) and name not in _NOT_INHERITED_NAMES
    }


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a generation's serve process (saved, so a later control plane can restart it)."""

    command: list[str]
    environment: dict[str, str]  # on top of the inherited environment
    cwd: str

    def env(self) -> dict[str, str]:
        return {**inherited_environ(), **self.environment}


class ChildProcess:
    """A serve process this control plane started, and the log writer reading its output."""

    def __init__(self, serve: subprocess.Popen[bytes], writer: subprocess.Popen[bytes]) -> None:
        self.serve, self.writer = serve, writer
        self.pid = serve.pid

    def wait(self, timeout: float) -> Exit | None:
        try:
            return Exit(self.serve.wait(timeout))
        except subprocess.TimeoutExpired:
            return None

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.serve.send_signal(signum)  # never signals a reaped (possibly reused) pid

    def finish(self, timeout: float = 5) -> None:
        """After the serve process and its workers are gone: let the writer copy their last lines."""
        try:
            self.writer.wait(timeout)
        except subprocess.TimeoutExpired:
            self.writer.kill()
            self.writer.wait()

    def release(self) -> None:
        """Stop watching but keep running; reap both in the background so no zombie outlives them."""
        for process in (self.serve, self.writer):
            threading.Thread(target=process.wait, daemon=True, name=f"reap-{process.pid}").start()


class AdoptedProcess:
    """A serve process an earlier control plane started: watched through a pidfd, as it is not our child."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid, self._pidfd = pid, pidfd

    def wait(self, timeout: float) -> Exit | None:
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        return Exit(None) if poller.poll(timeout * 1000) else None

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signum)

    def finish(self, timeout: float = 5) -> None:
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._pidfd)


def spawn(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    log: Path,
    max_bytes: int,
    keep: int,
    *,
    registry_url: str | None = None,
) -> ChildProcess:
    """Start `command` in its own session, its output going through a log writer into `log`; `registry_url`, when
    given, reaches it through an inherited pipe (url_handoff.py), never its environment or command line.

    The writer is a separate process rather than a thread of ours: a pipe read by the control plane
    would break when the control plane exits, and the serve process with it (EPIPE on every log line).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    handed: tuple[int, ...] = ()
    read_end, write_end = os.pipe()
    try:
        if registry_url is not None:
            url_fd, variable = pipe_url(registry_url)
            handed, env = (url_fd,), {**env, **variable}
        writer = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_WRITER), str(log), str(max_bytes), str(keep)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in serve's process group: it outlives a group kill to drain the pipe
        )
        try:
            serve = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                env=env,
                cwd=cwd,
                start_new_session=True,
                pass_fds=handed,
            )
        except BaseException:
            os.close(write_end)
            write_end = -1
            writer.wait()
            raise
    finally:
        for fd in (read_end, *handed):
            os.close(fd)
        if write_end >= 0:
            os.close(write_end)  # only the serve process (and its workers) hold it now: EOF when they are gone
    return ChildProcess(serve, writer)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


def _has_token(pid: int, token: str) -> bool:
    return f"{TOKEN_VARIABLE}={token}".encode() in _read(f"/proc/{pid}/environ").split(b"\0")


def carries_token(pid: int, token: str) -> bool:
    """Whether `pid` is a live process started with `token` (a zombie, or a stranger reusing the pid, is not)."""
    return bool(token) and _running(pid) and _has_token(pid, token)


def is_ours(pid: int, token: str) -> bool:
    """Whether `pid` is a `scorehost serve` process carrying `token` (not a stranger that reuses the pid)."""
    arguments = _read(f"/proc/{pid}/cmdline").split(b"\0")
    return b"serve" in arguments and any(b"scorehost" in argument for argument in arguments) and _has_token(pid, token)


def kill_leftovers(pgid: int, token: str, timeout: float = 2.0) -> int:
    """SIGKILL every process of group `pgid` that carries `token` (a serve process and its workers,
    which outlive a supervisor killed with SIGKILL and hold its port) and wait until they are gone,
    their sockets closed; return how many were killed."""
    killed: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _group(int(entry)) == pgid and _has_token(int(entry), token):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(killed)


def _stat(pid: int) -> list[bytes]:
    """/proc/<pid>/stat's fields after the command name: state, ppid, pgrp, ..."""
    stat = _read(f"/proc/{pid}/stat")
    return stat[stat.rfind(b")") + 2 :].split()


def _group(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if len(fields) > 2 else None


def _running(pid: int) -> bool:
    """Not gone and not a zombie (a zombie has closed its files and sockets)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")


def runtime_dir() -> Path:
    """A folder only this user can enter, with a short path (a socket path holds at most 107 bytes):
    `$XDG_RUNTIME_DIR/scorehost`, or `/tmp/scorehost-<uid>`. One that another user owns, or that others may
    enter, is refused rather than used."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    folder = Path(base) / "scorehost" if base and os.path.isdir(base) else Path(f"/tmp/scorehost-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{folder} must be a folder of this user that nobody else may enter (mode 0700); "
            "remove it, or set XDG_RUNTIME_DIR to a private folder"
        )
    return folder


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect("\0" + self.path[1:] if self.path.startswith("@") else self.path)


def probe_ready(url: str, timeout: float = 1.0) -> bool:
    """Whether GET /ready at `url` (`unix:PATH` or `http://HOST:PORT`) answers 200: init() has finished."""
    if url.startswith("unix:"):
        connection: http.client.HTTPConnection = _UnixConnection(url.removeprefix("unix:"), timeout)
    else:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout)
    try:
        connection.request("GET", "/ready")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
