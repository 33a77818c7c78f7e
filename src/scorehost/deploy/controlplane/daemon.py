"""The control-plane process: the API, the controller, and the gateway it keeps running.

```
<SCOREHOST_HOME>/controlplane/
  token            the API's bearer token (0600), made on first start
  address.json     where the API and the gateway listen, and the control plane's pid (0600)
  controlplane.log its log; gateway.log the gateway's
```

`start` runs `scorehost controlplane run` detached, in its own session, and waits for its API to
answer. The gateway is a separate process that outlives a crashed control plane (the routes file
keeps it serving); a restarted control plane finds it again by its pid file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from scorehost.client import ControlPlaneAddress
from scorehost.config import WorkspaceSettings
from scorehost.errors import ServiceUnavailable
from scorehost.registry.store import process_alive

__all__ = ["control_plane_status", "run_control_plane", "start_control_plane", "stop_control_plane"]

logger = logging.getLogger("scorehost.controlplane")

API_PORT = 5100
GATEWAY_PORT = 5080


def _folder(home: Path) -> Path:
    folder = home / "controlplane"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _write_private(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(scratch, path)


def _token(folder: Path) -> str:
    path = folder / "token"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def _ours(pid: int, marker: str) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return process_alive(pid)  # no /proc: trust the pid file


def _healthy(address: ControlPlaneAddress, timeout: float = 2.0) -> bool:
    try:
        answer = httpx.get(
            f"{address.api}/api/v1/health", headers={"Authorization": f"Bearer {address.token}"}, timeout=timeout
        )
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- the process -------------------------------------------------------------------------------------

# Started through a short-lived launcher: the process it starts belongs to no one here (init reaps it),
# so it outlives its starter and never lingers as its zombie.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log, "
    "start_new_session=True)\n"
    "print(child.pid)\n"
)


def spawn_detached(argv: list[str], log: Path) -> int:
    """Start `argv` in its own session, output appended to `log`, owned by no process of ours; its pid."""
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log), *argv], capture_output=True, text=True, check=True, timeout=30
    )
    return int(launched.stdout.strip())


def _gateway(home: Path, folder: Path, host: str, port: int, workers: int, otlp_endpoint: str | None) -> int:
    """The gateway's pid: the one already running for this workspace (as it was started), or a new one."""
    pid_file = folder / "gateway.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if process_alive(pid) and _ours(pid, "gateway"):
            logger.info("gateway (pid %d) found running", pid)
            return pid
    pid = spawn_detached(
        [sys.executable, "-m", "scorehost", "gateway", "--home", str(home), "--host", host]
        + ["--port", str(port), "--workers", str(workers)]
        + (["--otlp-endpoint", otlp_endpoint] if otlp_endpoint else []),
        folder / "gateway.log",
    )
    _write_private(pid_file, str(pid))
    return pid


def _wait_listening(host: str, port: int, pid: int, log: Path, timeout: float = 60.0) -> None:
    """Return once the gateway accepts connections: the control plane is not up until scoring URIs answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
            return
        if not process_alive(pid):
            raise ServiceUnavailable(f"the gateway exited at start-up; {log} ends with:\n{_log_tail(log)}")
        time.sleep(0.05)
    raise ServiceUnavailable(f"the gateway does not listen on {host}:{port} after {timeout:.0f} s; see {log}")


def run_control_plane(
    home: Path,
    host: str,
    api_port: int,
    gateway_port: int,
    gateway_workers: int = 1,
    otlp_endpoint: str | None = None,
) -> int:
    """Serve the API until SIGTERM/SIGINT; then stop the deployments and the gateway (its spans to
    `otlp_endpoint`, when given). Returns an exit code."""
    from werkzeug.serving import make_server

    from scorehost.deploy.backends.local import LocalBackend
    from scorehost.deploy.backends.router import BackendRouter
    from scorehost.deploy.controlplane.api import ControlPlaneApp
    from scorehost.deploy.controlplane.controller import Controller
    from scorehost.deploy.state import DeployState
    from scorehost.registry import database

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = _folder(home)
    token = _token(folder)
    engine = database.connect(WorkspaceSettings(home=home).database_url)
    state = DeployState(engine)
    controller = Controller(state, BackendRouter(home, LocalBackend(home)), home)
    gateway_pid = _gateway(home, folder, host, gateway_port, gateway_workers, otlp_endpoint)
    gateway_url = f"http://{host}:{gateway_port}"
    server = make_server(host, api_port, ControlPlaneApp(state, controller, token, gateway_url), threaded=True)
    _wait_listening(host, gateway_port, gateway_pid, folder / "gateway.log")
    controller.recover()
    controller.watch()
    address = {"api": f"http://{host}:{server.server_port}", "gateway": gateway_url, "pid": os.getpid()}
    _write_private(folder / "address.json", json.dumps(address))
    logger.info("control plane on %s, gateway on %s (workspace %s)", address["api"], gateway_url, home)

    def shut_down(signum: int, _frame: Any) -> None:
        logger.info("%s received: stopping deployments and the gateway", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        (folder / "address.json").unlink(missing_ok=True)
        controller.close(stop_deployments=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(gateway_pid, signal.SIGTERM)
        (folder / "gateway.pid").unlink(missing_ok=True)
        engine.dispose()
    return 0


# -- from the CLI --------------------------------------------------------------------------------------


def start_control_plane(
    home: Path,
    *,
    host: str = "127.0.0.1",
    api_port: int = API_PORT,
    gateway_port: int = GATEWAY_PORT,
    otlp_endpoint: str | None = None,
    wait: float = 30.0,
) -> ControlPlaneAddress:
    """The running control plane's address, starting it (detached) when none answers; a gateway it starts
    sends its spans to `otlp_endpoint`, when given."""
    folder = _folder(home)
    with contextlib.suppress(ServiceUnavailable):
        address = ControlPlaneAddress.of(home)
        if _healthy(address):
            return address
    log_path = folder / "controlplane.log"
    spawn_detached(
        [sys.executable, "-m", "scorehost", "controlplane", "run", "--home", str(home), "--host", host]
        + ["--api-port", str(api_port), "--gateway-port", str(gateway_port)]
        + (["--otlp-endpoint", otlp_endpoint] if otlp_endpoint else []),
        log_path,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with contextlib.suppress(ServiceUnavailable):
            address = ControlPlaneAddress.of(home)
            if _healthy(address):
                return address
        time.sleep(0.1)
    raise ServiceUnavailable(
        f"the control plane did not start within {wait:.0f} s; its log ({log_path}) ends with:\n{_log_tail(log_path)}"
    )


def stop_control_plane(home: Path, timeout: float = 60.0) -> bool:
    """Stop the control plane (and with it the deployments and the gateway); False if none was running."""
    try:
        pid = int(json.loads((home / "controlplane" / "address.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return False
    if not process_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def control_plane_status(home: Path) -> dict[str, Any]:
    """Whether a control plane runs for the workspace, where, and its gateway."""
    try:
        address = ControlPlaneAddress.of(home)
    except ServiceUnavailable:
        return {"running": False, "workspace": str(home)}
    return {
        "running": _healthy(address),
        "workspace": str(home),
        "api": address.api,
        "gateway": address.gateway,
    }
