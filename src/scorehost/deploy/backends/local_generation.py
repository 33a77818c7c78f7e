"""One local deployment generation and the thread that supervises its `scorehost serve` process.

The thread starts the process, probes /ready, waits for it to exit and restarts it with exponential
backoff, recording each cause. Every decision about the process is taken on that thread; the public
methods only post requests (stop, detach) and read the state under a condition variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.deploy.backends.base import DeploymentRecord, DeploymentStatus, InstanceState, InstanceStatus
from scorehost.deploy.backends.local_process import (
    AdoptedProcess,
    ChildProcess,
    Exit,
    Launch,
    kill_leftovers,
    probe_ready,
    spawn,
)
from scorehost.deploy.backends.logfiles import follow, last_lines
from scorehost.errors import DeploymentFailed, DeploymentTimeout, RegistryError
from scorehost.private_files import write_private
from scorehost.telemetry.worker_report import read_worker_report

__all__ = ["WORKER_REPORT", "Backoff", "Generation", "LogSettings", "read_json", "write_json_private"]

WORKER_REPORT = "workers.json"  # in the generation's folder: serve's report of its workers


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between restarts: `initial`, doubling up to `cap`, back to `initial` after `reset_after`
    seconds of healthy running."""

    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    """serve.log is rotated past `max_bytes`, keeping `keep` older files; errors carry `tail` lines."""

    max_bytes: int = 10 * 1024 * 1024
    keep: int = 5
    tail: int = 50


class Generation:
    """A running generation (the local backend's `Handle`)."""

    def __init__(
        self,
        endpoint: str,
        deployment: str,
        generation: int,
        folder: Path,
        token: str,
        launch: Launch,
        backoff: Backoff,
        logs: LogSettings,
        url: str,
        *,
        registry_url: str | None = None,
    ) -> None:
        self._endpoint, self._deployment, self._generation = endpoint, deployment, generation
        # The control plane's database URL, passed at each start through a pipe (url_handoff.py), never saved.
        self._registry_url = registry_url if "--model" in launch.command else None
        self.key = (endpoint, deployment, generation)
        self.folder, self.token, self.launch = folder, token, launch
        self.url = url  # where its serve listens, the same across restarts: unix:PATH
        self.log_path = folder / "serve.log"
        self._backoff, self._logs = backoff, logs
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._state = InstanceState.STARTING
        self._process: ChildProcess | AdoptedProcess | None = None
        self._restarts = 0
        self._last_error: str | None = None
        self._started_at: float | None = None  # Unix time, for status
        self._started = 0.0  # monotonic, for uptime
        self._ever_ready = False
        self._drain: float | None = None  # set by stop()
        self._detach = False
        self._thread: threading.Thread | None = None
        self.finished = False

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def deployment(self) -> str:
        return self._deployment

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def name(self) -> str:
        return f"{self._endpoint}/{self._deployment} generation {self._generation}"

    def record(self) -> DeploymentRecord:
        return DeploymentRecord("local", *self.key, {"token": self.token})

    # --- requests from the backend -----------------------------------------------------------------

    def begin(self, adopted: AdoptedProcess | None = None, state: Mapping[str, Any] | None = None) -> None:
        if adopted is not None:
            saved = state or {}
            self._process, self._ever_ready = adopted, True
            self._state = InstanceState.READY
            self._restarts = int(saved.get("restarts", 0))
            self._last_error = saved.get("last_error")
            self._started_at = saved.get("started_at")
            self._started = time.monotonic() - max(0.0, time.time() - float(self._started_at or time.time()))
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"deploy {self.name}")
        self._thread.start()

    def stop(self, drain_seconds: float) -> None:
        with self._changed:
            if self._drain is None:
                self._drain = drain_seconds
        self._wake.set()
        if self._thread is not None:
            self._thread.join(drain_seconds + 30)
        self._set(state=InstanceState.STOPPED)

    def detach(self) -> None:
        """Stop supervising; the process keeps running for a later adopt()."""
        self._detach = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                state, error = self._state, self._last_error
                if state is InstanceState.READY:
                    return
                if state is InstanceState.FAILED:
                    message = f"{self.name} cannot start: {error}"
                    break
                if state is InstanceState.STOPPED:
                    message = f"{self.name} was stopped before it became ready"
                    break
                if self._restarts and not self._ever_ready:
                    message = f"{self.name} exited before it became ready: {error} (restarting it with backoff)"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = tuple(last_lines(self.log_path, self._logs.keep, self._logs.tail))
                    raise DeploymentTimeout(
                        f"{self.name} did not become ready within {timeout:g} s: init() is still running or "
                        "stuck (its log below); it keeps starting in the background",
                        cause="timeout",
                        log_tail=tail,
                    )
                self._changed.wait(remaining)
        tail = tuple(last_lines(self.log_path, self._logs.keep, self._logs.tail))
        raise DeploymentFailed(message, cause=error or "", log_tail=tail)

    def status(self) -> DeploymentStatus:
        """One instance per worker of the serve process: its own state, pid, restarts and last cause, from serve's
        worker report; while serve itself is not running (or has not reported yet), each takes serve's state."""
        with self._changed:
            state, restarts, last_error = self._state, self._restarts, self._last_error
            started_at, pid = self._started_at, self._process.pid if self._process is not None else None
        url = None if state in (InstanceState.FAILED, InstanceState.STOPPED) else self.url
        running = state in (InstanceState.STARTING, InstanceState.READY)
        reported = read_worker_report(self.folder / WORKER_REPORT, pid) if running and pid is not None else None
        workers = {worker.get("index"): worker for worker in reported or []}
        instances = []
        for index in range(1, max(_workers_of(self.launch.command), len(workers)) + 1):
            worker = workers.get(index)
            if worker is None:  # serve has not forked it yet, or says nothing: it stands where serve stands
                instance = InstanceStatus(self._instance_name(index), state, url, restarts, last_error, started_at)
            else:  # a worker's restarts add to those of serve (each of which restarted every worker)
                instance = InstanceStatus(
                    self._instance_name(index),
                    _instance_state(worker.get("state"), state),
                    url,
                    restarts + int(worker.get("restarts") or 0),
                    worker.get("last_error") or last_error,
                    worker.get("started_at") or started_at,
                    worker.get("pid"),
                )
            instances.append(instance)
        # The generation's own state is serve's: ready once it answers /ready, as the gateway sees it.
        return DeploymentStatus(*self.key, state, tuple(instances))

    def _instance_name(self, index: int) -> str:
        return f"{self._deployment}-{self._generation}-{index}"

    def targets(self) -> list[str]:
        with self._changed:
            return [self.url] if self._state is InstanceState.READY else []

    def logs(self, *, follow: bool, lines: int) -> Iterator[str]:
        if follow:
            return _follow(self, lines)
        return iter(last_lines(self.log_path, self._logs.keep, lines))

    # --- the supervising thread --------------------------------------------------------------------

    def _remove_socket(self) -> None:
        """serve removes its socket file when it stops; one killed with SIGKILL leaves it behind."""
        if self.url.startswith("unix:/"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.url.removeprefix("unix:"))

    def _set(self, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(self, "_" + name, value)
            self._changed.notify_all()

    def _run(self) -> None:
        delay: float | None = self._backoff.initial
        try:
            while delay is not None:
                if self._process is None and not self._spawn():
                    return
                outcome = self._watch()
                delay = None if outcome is None else self._after_exit(outcome, delay)
        except Exception as error:  # a bug of ours must not leave callers of wait_ready() waiting
            self._set(state=InstanceState.FAILED, last_error=f"supervision failed: {error!r}")
            raise
        finally:
            self.finished = True
            self._set()

    def _spawn(self) -> bool:
        # The command names the generation's socket, so the gateway's target stays put across restarts.
        launch = self.launch
        try:
            process = spawn(
                launch.command,
                launch.env(),
                Path(launch.cwd),
                self.log_path,
                self._logs.max_bytes,
                self._logs.keep,
                registry_url=self._registry_url,
            )
        except (OSError, RegistryError) as error:
            self._set(state=InstanceState.FAILED, last_error=f"cannot start scorehost serve: {error}")
            return False
        self._started = time.monotonic()
        self._set(process=process, started_at=time.time(), state=InstanceState.STARTING)
        self._save()
        return True

    def _watch(self) -> Exit | None:
        """Wait for the process to exit (its Exit), or for stop/detach (None); mark it ready on the way."""
        process = self._process
        assert process is not None
        # Probe often at first (most scripts load in well under a second), then back off to once a second,
        # so a ten-minute init() does not fill the log with /ready lines.
        interval, next_probe = 0.05, 0.0
        while True:
            exit = process.wait(0.05 if self._state is InstanceState.STARTING else 0.2)
            if exit is not None:
                return exit
            if self._drain is not None:
                self._terminate(process, self._drain)
                return None
            if self._detach:
                process.release()
                return None
            if self._state is InstanceState.STARTING and time.monotonic() >= next_probe:
                if probe_ready(self.url, timeout=0.5):
                    self._set(state=InstanceState.READY, ever_ready=True)
                    self._save()
                interval = min(interval * 1.5, 1.0)
                next_probe = time.monotonic() + interval

    def _terminate(self, process: ChildProcess | AdoptedProcess, drain: float) -> None:
        process.send(signal.SIGTERM)  # serve stops accepting and lets in-flight requests finish
        if process.wait(drain) is None:
            self._note(f"serve (pid {process.pid}) still running {drain:g} s after SIGTERM; killing it")
            kill_leftovers(process.pid, self.token)
            process.wait(5)
        kill_leftovers(process.pid, self.token)
        process.finish()
        self._remove_socket()
        self._set(process=None, state=InstanceState.STOPPED)
        self._save()

    def _after_exit(self, exit: Exit, delay: float) -> float | None:
        """Record why it died and wait out the backoff; the next delay, or None to stop supervising."""
        process = self._process
        assert process is not None
        uptime = time.monotonic() - self._started
        kill_leftovers(process.pid, self.token)  # orphaned workers hold the port and the log pipe
        process.finish()  # the writer has copied the last lines once it returns
        cause = exit.describe()
        if exit.startup_error and not self._ever_ready:
            # Start-up errors repeat identically: restarting would only loop. The log says what to fix.
            reason = _startup_reason(last_lines(self.log_path, self._logs.keep, self._logs.tail))
            self._note(f"serve (pid {process.pid}) {cause}; not restarting it")
            self._remove_socket()
            self._set(process=None, state=InstanceState.FAILED, last_error=f"{cause}: {reason}" if reason else cause)
            self._save()
            return None
        if uptime >= self._backoff.reset_after:
            delay = self._backoff.initial
        self._note(f"serve (pid {process.pid}, up {uptime:.1f} s) {cause}; restarting it in {delay:g} s")
        self._set(process=None, state=InstanceState.RESTARTING, restarts=self._restarts + 1, last_error=cause)
        self._save()
        self._wake.wait(delay)
        if self._drain is not None:
            self._remove_socket()
            self._set(state=InstanceState.STOPPED)
            return None
        if self._detach:
            return None
        return min(delay * 2, self._backoff.cap)

    def _save(self) -> None:
        with self._changed:
            state = {
                "pid": self._process.pid if self._process is not None else None,
                "url": self.url,
                "token": self.token,
                "state": str(self._state),
                "started_at": self._started_at,
                "restarts": self._restarts,
                "last_error": self._last_error,
            }
        write_json_private(self.folder / "process.json", state)

    def _note(self, message: str) -> None:
        """A line of our own in serve.log (appended: safe beside the writer, which appends too)."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        line = f"{stamp} WARN  [{os.getpid()}] scorehost.deploy - {message}\n"
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _workers_of(command: list[str]) -> int:
    """The `--workers` count of a serve command line (1 when it gives none)."""
    try:
        return max(1, int(command[command.index("--workers") + 1]))
    except (ValueError, IndexError):
        return 1


def _instance_state(reported: Any, serve: InstanceState) -> InstanceState:
    """A worker's state as its report says, else serve's."""
    try:
        return InstanceState(reported)
    except ValueError:
        return serve


def _follow(generation: Generation, lines: int) -> Iterator[str]:
    settings = generation._logs
    yield from follow(generation.log_path, settings.keep, lines, lambda: not generation.finished)


def _startup_reason(tail: list[str]) -> str:
    """The line after serve's 'cannot be served' headline (what is wrong), else its last line."""
    for index, line in enumerate(tail):
        if "cannot be served" in line and index + 1 < len(tail):
            return tail[index + 1].strip()
    return tail[-1].strip() if tail else ""


def write_json_private(path: Path, value: Mapping[str, Any]) -> None:
    """Write JSON atomically, readable by the owner only (the environment may hold secrets)."""
    write_private(path, json.dumps(value).encode())


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
