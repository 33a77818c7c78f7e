"""The gateway as a process the control plane owns: started, watched, restarted with backoff, found again.

The gateway runs in its own session with a token in its environment (as deployments do), its output going
through a log writer into the rotated `gateway.log`. A thread waits for it to exit and restarts it with
exponential backoff, logging the cause (exit code or signal) and counting restarts. `gateway.json` (0600)
records its pid, token, command and restarts, so a control plane that restarts after a crash finds the
gateway again instead of starting a second one, and `controlplane status` can say what runs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.deploy.backends.local_generation import Backoff, LogSettings, read_json, write_json_private
from scorehost.deploy.backends.local_process import (
    TOKEN_VARIABLE,
    AdoptedProcess,
    ChildProcess,
    Exit,
    carries_token,
    kill_leftovers,
    spawn,
)
from scorehost.deploy.backends.logfiles import last_lines
from scorehost.deploy.controlplane.ports import GATEWAY_PORT, gateway_port
from scorehost.errors import ServiceUnavailable
from scorehost.system import process_state
from scorehost.timestamps import iso_utc

__all__ = ["GatewayOptions", "GatewaySupervisor", "gateway_command", "stop_left_gateway"]

logger = logging.getLogger("scorehost.controlplane")

STATE_FILE = "gateway.json"
LOG_FILE = "gateway.log"
_PROBE_EVERY_S = 5.0  # GET / this often (or a third of the probe timeout, if shorter)
_PROBE_ANSWER_S = 3.0  # and give each answer this long


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """How the control plane runs its gateway."""

    home: Path
    host: str = "127.0.0.1"
    port: int = GATEWAY_PORT
    workers: int = 1
    otlp_endpoint: str | None = None


def gateway_command(options: GatewayOptions) -> list[str]:
    """The gateway's command line: the one place it is built."""
    command = [sys.executable, "-m", "scorehost", "gateway", "--home", str(options.home)]
    command += ["--host", options.host, "--port", str(options.port), "--workers", str(options.workers)]
    if options.otlp_endpoint:
        command += ["--otlp-endpoint", options.otlp_endpoint]
    # The gateway's own limits (header, body and idle timeouts, connections per worker) go here, as flags of
    # `scorehost gateway`, so a restarted gateway gets exactly what the first one got.
    return command


class GatewaySupervisor:
    """Keeps one gateway running for the control plane; thread-safe."""

    def __init__(
        self,
        options: GatewayOptions,
        folder: Path,
        *,
        backoff: Backoff | None = None,
        logs: LogSettings | None = None,
        listen_timeout: float = 60.0,
        probe_timeout: float = 30.0,
    ) -> None:
        self.options = options
        self.command = gateway_command(options)
        self.folder = folder
        self.log_path = folder / LOG_FILE
        self._port = gateway_port(options.host, options.port)
        self._backoff = backoff or Backoff()
        self._logs = logs or LogSettings()
        self._listen_timeout = listen_timeout
        self._probe_timeout = probe_timeout
        self._lock = threading.Lock()
        self._process: ChildProcess | AdoptedProcess | None = None
        self._token = ""
        self._state = "starting"
        self._restarts = 0
        self._last_error: str | None = None
        self._started_at: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- from the control plane ------------------------------------------------------------------

    def start(self) -> None:
        """Find the gateway still running from before (started with the same command), or start one; return
        once it listens. ServiceUnavailable, with its log's last lines, when it cannot start; PortInUse, naming
        --gateway-port, when another program holds the port (checked before it starts: that program would answer
        the readiness check)."""
        saved = read_json(self.folder / STATE_FILE)
        self._restarts = int(saved.get("restarts") or 0)
        self._last_error = saved.get("last_error")
        adopted = self._adopt(saved)
        if adopted is None:
            self._port.check_free()
            self._spawn()
            self._wait_listening()
        else:
            logger.info("gateway (pid %d) found running", adopted.pid)
            self._set(process=adopted, token=str(saved["token"]), started_at=saved.get("started_at"))
        self._set(state="running")
        self._thread = threading.Thread(target=self._watch, daemon=True, name="scorehost-gateway-watch")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and end the gateway (SIGTERM: it finishes in-flight requests), and its workers."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            process, token = self._process, self._token
            self._process = None
            self._state = "stopped"
        if process is not None:
            process.send(signal.SIGTERM)
            process.wait(timeout)
            kill_leftovers(process.pid, token)
            process.finish()
        (self.folder / STATE_FILE).unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """Its pid, whether that process is alive now, its state, restarts and the last cause of a restart."""
        with self._lock:
            pid = self._process.pid if self._process is not None else None
            state, restarts, error, started = self._state, self._restarts, self._last_error, self._started_at
        alive = pid is not None and carries_token(pid, self._token)
        return {
            "pid": pid,
            "alive": alive,
            "state": state if alive or state != "running" else "dead",
            "restarts": restarts,
            "last_error": error,
            "started_at": iso_utc(started),
            "url": f"http://{self.options.host}:{self.options.port}",
            "log": str(self.log_path),
        }

    # -- the watching thread -------------------------------------------------------------------------

    def _watch(self) -> None:
        delay = self._backoff.initial
        answered = next_probe = time.monotonic()
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            if process is None:
                return
            exit = process.wait(0.2)
            if exit is None:
                now = time.monotonic()
                if self._probe_timeout and now >= next_probe:
                    next_probe = now + min(_PROBE_EVERY_S, self._probe_timeout / 3)
                    if self._answers():
                        answered = now
                    elif now - answered > self._probe_timeout:
                        self._kill_unanswering(process, now - answered)
                continue
            if self._stopping.is_set():
                return
            delay = self._restart(process, exit, delay)
            answered = next_probe = time.monotonic()

    def _answers(self) -> bool:
        """Whether the gateway answers `GET /` (its own liveness answer) within a few seconds."""
        timeout = min(_PROBE_ANSWER_S, max(0.5, self._probe_timeout / 3))
        try:
            with socket.create_connection((self.options.host, self.options.port), timeout=timeout) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: scorehost-controlplane\r\nConnection: close\r\n\r\n")
                return sock.recv(16).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _kill_unanswering(self, process: ChildProcess | AdoptedProcess, silent: float) -> None:
        """A gateway that is alive but answers nothing (SIGSTOP, a loop that never yields): kill it, so the watch
        sees it exit and restarts it, with this as the cause."""
        state = process_state(process.pid)
        why = "is stopped (SIGSTOP/SIGTSTP)" if state in ("T", "t") else "is stuck"
        logger.error("gateway (pid %d) %s: no answer to GET / for %.0f s; killing it", process.pid, why, silent)
        self._set(last_error=f"{why}: no answer to GET / for {silent:.0f} s")
        process.send(signal.SIGKILL)
        process.send(signal.SIGCONT)

    def _restart(self, process: ChildProcess | AdoptedProcess, exit: Exit, delay: float) -> float:
        """Record why the gateway died, wait out the backoff and start it again; the next delay."""
        uptime = time.time() - (self._started_at or time.time())
        kill_leftovers(process.pid, self._token)  # its workers hold the port and the log pipe
        process.finish()
        if uptime >= self._backoff.reset_after:
            delay = self._backoff.initial
        cause = exit.describe()
        with self._lock:
            if self._last_error and self._last_error.startswith(("is stopped", "is stuck")):
                cause = f"{cause}: it {self._last_error}"  # killed by _kill_unanswering
        logger.error("gateway (pid %d, up %.1f s) %s; restarting it in %g s", process.pid, uptime, cause, delay)
        self._set(process=None, state="restarting", restarts=self._restarts + 1, last_error=cause)
        self._save()
        while not self._stopping.wait(delay):
            try:
                self._port.check_free()  # else the readiness check would take that program for the gateway
                self._spawn()
                self._wait_listening()
            except (OSError, ServiceUnavailable) as error:
                failed = self._process
                message = error.message if isinstance(error, ServiceUnavailable) else str(error)
                logger.error("gateway could not be restarted: %s; trying again in %g s", message.splitlines()[0], delay)
                if failed is not None:
                    kill_leftovers(failed.pid, self._token)
                    failed.finish()
                self._set(process=None, last_error=message.splitlines()[0])
                delay = min(delay * 2, self._backoff.cap)
                continue
            logger.info("gateway restarted (pid %d)", self._process.pid if self._process else 0)
            self._set(state="running")
            return min(delay * 2, self._backoff.cap)
        return delay

    # -- helpers -----------------------------------------------------------------------------------

    def _spawn(self) -> None:
        token = os.urandom(16).hex()
        environment = {**os.environ, TOKEN_VARIABLE: token}
        process = spawn(self.command, environment, self.folder, self.log_path, self._logs.max_bytes, self._logs.keep)
        self._set(process=process, token=token, started_at=time.time(), state="starting")
        self._save()

    def _adopt(self, saved: dict[str, Any]) -> AdoptedProcess | None:
        """The gateway of `saved`, if it still runs with our token and the command this control plane wants."""
        legacy = self.folder / "gateway.pid"  # written by versions before the gateway was supervised
        with contextlib.suppress(OSError, ValueError):
            pid = int(legacy.read_text())
            if b"gateway" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)  # not ours to watch (no token): replaced by a supervised one
                _wait_gone(pid, 10.0)
        legacy.unlink(missing_ok=True)
        pid, token = int(saved.get("pid") or 0), str(saved.get("token") or "")
        if not pid or not token or not carries_token(pid, token):
            return None
        if saved.get("command") != self.command:  # started with other options (a new port): replace it
            logger.info("gateway (pid %d) runs with other options: replacing it", pid)
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, 10.0)
            kill_leftovers(pid, token)
            return None
        try:
            return AdoptedProcess(pid, os.pidfd_open(pid))
        except ProcessLookupError:
            return None

    def _wait_listening(self) -> None:
        """Return once the gateway accepts connections: the control plane is not up until scoring URIs answer."""
        host, port = self.options.host, self.options.port
        deadline = time.monotonic() + self._listen_timeout
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.wait(0.05) is not None:  # first: a program that took the port since would answer below
                lines = last_lines(self.log_path, self._logs.keep, 30)
                tail = "\n".join(lines)
                if "already in use" in "\n".join(lines[-3:]):  # its own error (sockets.py), this start's
                    raise self._port.refusal(OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)))
                raise ServiceUnavailable(f"the gateway exited at start-up; {self.log_path} ends with:\n{tail}")
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
                return
        raise ServiceUnavailable(
            f"the gateway does not listen on {host}:{port} after {self._listen_timeout:.0f} s; see {self.log_path}"
        )

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, "_" + name, value)

    def _save(self) -> None:
        with self._lock:
            state = {
                "pid": self._process.pid if self._process is not None else None,
                "token": self._token,
                "command": self.command,
                "restarts": self._restarts,
                "last_error": self._last_error,
                "started_at": self._started_at,
            }
        write_json_private(self.folder / STATE_FILE, state)


def stop_left_gateway(folder: Path, timeout: float = 10.0) -> bool:
    """End the gateway a crashed control plane left running (found by its token); whether there was one."""
    saved = read_json(folder / STATE_FILE)
    pid, token = int(saved.get("pid") or 0), str(saved.get("token") or "")
    if not pid or not carries_token(pid, token):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, timeout)
    kill_leftovers(pid, token)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
