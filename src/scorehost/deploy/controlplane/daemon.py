"""The control-plane process: the API, the controller, and the gateway it keeps running.

```
<SCOREHOST_HOME>/controlplane/
  token            the API's bearer token (0600), made on first start
  address.json     where the API and the gateway listen, and the control plane's pid (0600)
  controlplane.log its log, rotated by size (controlplane.log.1, ...); controlplane.out what it printed
                   outside its log (a crash before the log was set up)
  gateway.log      the gateway's, rotated; gateway.json its pid, restarts and last cause (0600)
```

`start` runs `scorehost controlplane run` detached, in its own session, and waits for its API to
answer, or for it to exit: a port another program holds is refused before anything starts (ports.py), and
`start` shows why at once. The gateway is a process the control plane supervises (gateway_process.py): restarted with
backoff when it dies, and left running when the control plane crashes (the routes file keeps it
serving), for the next control plane to find again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from scorehost.client import ControlPlaneAddress
from scorehost.config import ControlPlaneSettings, WorkspaceSettings
from scorehost.deploy.backends.local_process import carries_token
from scorehost.deploy.controlplane import ports
from scorehost.deploy.controlplane.ports import API_PORT, GATEWAY_PORT
from scorehost.errors import PortInUse, ServiceUnavailable, WorkspaceDatabaseError
from scorehost.private_files import write_private
from scorehost.registry.private import make_private
from scorehost.registry.store import process_alive
from scorehost.system import process_state
from scorehost.timestamps import iso_utc

__all__ = [
    "API_PORT",
    "GATEWAY_PORT",
    "control_plane_status",
    "run_control_plane",
    "start_control_plane",
    "stop_control_plane",
]

logger = logging.getLogger("scorehost.controlplane")


def _folder(home: Path) -> Path:
    folder = home / "controlplane"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _token(folder: Path) -> str:
    path = folder / "token"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32).encode())
    make_private(path)  # a token an older scorehost wrote with the umask's mode
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


def _local(url: str) -> str:
    """A URL this machine can reach: a server bound to every interface answers on loopback."""
    return url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")


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


def run_control_plane(
    home: Path,
    host: str,
    api_port: int,
    gateway_port: int,
    gateway_workers: int = 1,
    otlp_endpoint: str | None = None,
    settings: ControlPlaneSettings | None = None,
    log_to_file: bool = False,
) -> int:
    """Serve the API until SIGTERM/SIGINT; then stop the deployments and the gateway (its spans to
    `otlp_endpoint`, when given). Logs to the rotated controlplane.log with `log_to_file`, else to stderr.
    Returns an exit code."""
    from werkzeug.serving import make_server

    from scorehost.console import ConsoleApp, mount
    from scorehost.console.sampler import MetricsSampler, targets_from_routes
    from scorehost.deploy.backends.local import LocalBackend
    from scorehost.deploy.backends.local_generation import Backoff, LogSettings
    from scorehost.deploy.backends.router import BackendRouter
    from scorehost.deploy.controlplane.api import ControlPlaneApp
    from scorehost.deploy.controlplane.controller import Controller
    from scorehost.deploy.controlplane.gateway_process import GatewayOptions, GatewaySupervisor
    from scorehost.deploy.controlplane.logs import AccessLog, configure_logging
    from scorehost.deploy.gateway.routes import routes_path
    from scorehost.deploy.state import DeployState
    from scorehost.registry import database, database_errors

    settings = settings or ControlPlaneSettings()
    folder = _folder(home)
    token = _token(folder)
    log = folder / "controlplane.log" if log_to_file else None
    workspace = WorkspaceSettings(home=home)
    # The database's password too: a driver's message or a traceback quoting the URL must not write it down.
    secrets = [token, *database_errors.password_forms(workspace.database_url)]
    configure_logging(log, settings.log_max_size, settings.log_backups, secrets=secrets)
    try:
        engine = database.connect(workspace.database_url)
        state = DeployState(engine)
    except WorkspaceDatabaseError as error:  # a wrong password, a server that is down: one line, not a traceback
        return _refuse(error.message, log_to_file)
    controller = Controller(state, BackendRouter(home, LocalBackend(home)), home)
    gateway = GatewaySupervisor(
        GatewayOptions(home, host, gateway_port, gateway_workers, otlp_endpoint),
        folder,
        backoff=Backoff(cap=settings.restart_backoff_cap),
        logs=LogSettings(max_bytes=settings.log_max_size, keep=settings.log_backups),
        probe_timeout=settings.gateway_probe_timeout,
    )
    started = time.time()

    def processes() -> dict[str, Any]:
        return {
            "control_plane": {"pid": os.getpid(), "alive": True, "state": "running", "started_at": iso_utc(started)},
            "gateway": gateway.status(),
            "deployments": controller.processes(),
        }

    gateway_url = f"http://{host}:{gateway_port}"
    api = ControlPlaneApp(state, controller, token, gateway_url, processes=processes, home=home)
    sampler = MetricsSampler(
        _local(gateway_url), lambda: targets_from_routes(routes_path(home)), settings.console_sample_interval
    )
    app = mount(api, ConsoleApp(api, token, _local(gateway_url), sampler))
    try:
        # Bound here, not by werkzeug: its error says "start the server with a different port" and exits.
        listening = ports.api_port(host, api_port).listen()
    except PortInUse as error:
        engine.dispose()
        return _refuse(error.message, log_to_file)
    with listening:  # werkzeug serves a duplicate of it
        server = make_server(host, 0, app, threaded=True, request_handler=AccessLog, fd=listening.fileno())
    try:
        gateway.start()
    except (PortInUse, ServiceUnavailable) as error:
        server.server_close()
        engine.dispose()
        return _refuse(error.message, log_to_file)
    controller.recover()
    controller.watch()
    sampler.start()
    address = {"api": f"http://{host}:{server.port}", "gateway": gateway_url, "pid": os.getpid()}
    write_private(folder / "address.json", json.dumps(address).encode())
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
        sampler.stop()
        controller.close(stop_deployments=True)
        gateway.stop()
        engine.dispose()
    return 0


def _refuse(message: str, log_to_file: bool) -> int:
    """Log why the control plane cannot start and, when it logs to a file, print it too: `start` shows what it
    printed (controlplane.out) as soon as it exits. The exit code."""
    logger.error("%s", message)
    if log_to_file:
        print(message, file=sys.stderr, flush=True)
    return 1


# -- from the CLI --------------------------------------------------------------------------------------


def start_control_plane(
    home: Path,
    *,
    host: str = "127.0.0.1",
    api_port: int = API_PORT,
    gateway_port: int = GATEWAY_PORT,
    otlp_endpoint: str | None = None,
    settings: ControlPlaneSettings | None = None,
    wait: float = 30.0,
) -> ControlPlaneAddress:
    """The running control plane's address, starting it (detached) when none answers; a gateway it starts
    sends its spans to `otlp_endpoint`, when given."""
    folder = _folder(home)
    with contextlib.suppress(ServiceUnavailable):
        address = ControlPlaneAddress.of(home)
        if _healthy(address):
            return address
    log_path, printed = folder / "controlplane.log", folder / "controlplane.out"
    printed.unlink(missing_ok=True)  # only this start's output, so it stays small
    pid = spawn_detached(
        [sys.executable, "-m", "scorehost", "controlplane", "run", "--home", str(home), "--host", host]
        + ["--api-port", str(api_port), "--gateway-port", str(gateway_port), "--log-file"]
        + (["--otlp-endpoint", otlp_endpoint] if otlp_endpoint else [])
        + (
            ["--log-max-size", str(settings.log_max_size), "--log-backups", str(settings.log_backups)]
            if settings
            else []
        ),
        printed,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with contextlib.suppress(ServiceUnavailable):
            address = ControlPlaneAddress.of(home)
            if _healthy(address):
                return address
        if not _running(pid):  # it exited at start-up (a port in use): say why now, not when `wait` is over
            raise ServiceUnavailable(_why_it_exited(printed, log_path))
        time.sleep(0.1)
    tail = _log_tail(printed) if printed.exists() and printed.stat().st_size else _log_tail(log_path)
    raise ServiceUnavailable(
        f"the control plane did not start within {wait:.0f} s; its log ({log_path}) ends with:\n{tail}"
    )


def _running(pid: int) -> bool:
    """Whether the process is there and not a zombie (one that no init reaped yet has exited all the same)."""
    return process_alive(pid) and process_state(pid) not in ("Z", "X")


def _why_it_exited(printed: Path, log: Path) -> str:
    """The control plane's own one-line refusal (a port in use, naming the flag), or the end of its output or log."""
    try:
        said = printed.read_text(errors="replace").strip()
    except OSError:
        said = ""
    if said and "\n" not in said:
        return f"the control plane could not start: {said}"
    source = printed if said else log
    return f"the control plane exited at start-up; {source} ends with:\n{_log_tail(source)}"


def stop_control_plane(home: Path, timeout: float = 60.0) -> bool:
    """Stop the control plane (and with it the deployments and the gateway); False if none was running (a gateway
    that a crashed control plane left running is stopped all the same)."""
    from scorehost.deploy.controlplane.gateway_process import stop_left_gateway

    try:
        pid = int(json.loads((home / "controlplane" / "address.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        pid = 0
    if not pid or not process_alive(pid) or not _ours(pid, "controlplane"):
        if (home / "controlplane").is_dir():
            stop_left_gateway(home / "controlplane")
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def control_plane_status(home: Path) -> dict[str, Any]:
    """Whether the control plane runs, where, and `processes`: the control plane, its gateway and each deployment
    generation's (pid, alive, state, restarts, last cause), as the control plane reports them, or from the pid
    files when it does not answer. `running`: the API answers; `healthy`: and the gateway is alive."""
    folder = home / "controlplane"
    report: dict[str, Any] = {"running": False, "healthy": False, "workspace": str(home)}
    try:
        address = ControlPlaneAddress.of(home)
    except ServiceUnavailable:
        address = None
    if address is not None:
        report.update(api=address.api, gateway=address.gateway)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            answer = httpx.get(
                f"{address.api}/api/v1/status", headers={"Authorization": f"Bearer {address.token}"}, timeout=5.0
            )
            if answer.status_code == 200:
                processes = answer.json()
                healthy = bool(processes.get("gateway", {}).get("alive"))
                report.update(running=True, healthy=healthy, processes=processes)
                return report
    saved = _read_json(folder / "address.json")
    pid = int(saved.get("pid") or 0)
    alive = bool(pid) and process_alive(pid) and _ours(pid, "controlplane")
    gateway = _read_json(folder / "gateway.json")
    gateway_pid = int(gateway.get("pid") or 0)
    gateway_alive = bool(gateway_pid) and carries_token(gateway_pid, str(gateway.get("token") or ""))
    report["processes"] = {
        "control_plane": {"pid": pid or None, "alive": alive, "state": "not answering" if alive else "stopped"},
        "gateway": {
            "pid": gateway_pid or None,
            "alive": gateway_alive,
            "state": "running, unsupervised" if gateway_alive else "stopped",
            "restarts": gateway.get("restarts", 0),
            "last_error": gateway.get("last_error"),
        },
        "deployments": [],  # only the control plane knows them
    }
    return report


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
