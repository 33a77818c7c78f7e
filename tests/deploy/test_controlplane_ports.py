"""`controlplane start` when another program holds one of its ports: it fails at once (not after its 30 s wait),
names the flag that moves the port, and leaves nothing running; a port in TIME_WAIT is not "in use"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _control_plane import free_port

from scorehost.deploy.controlplane.daemon import start_control_plane, stop_control_plane
from scorehost.deploy.controlplane.ports import gateway_port
from scorehost.errors import ScorehostError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def held() -> Iterator[int]:
    """A port another program listens on (a socket of this test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _processes_of(home: Path) -> list[str]:
    """The command lines of the processes that run for the workspace `home` (its path is in each of them)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.isdigit() and str(home) in command:
            found.append(command)
    return found


def test_an_api_port_in_use_fails_at_once_naming_api_port(tmp_path: Path, held: int) -> None:
    home = tmp_path / "home"
    command = [sys.executable, "-m", "scorehost", "controlplane", "start", "--home", str(home)]
    command += ["--api-port", str(held), "--gateway-port", str(free_port())]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        stop_control_plane(home)
    assert done.returncode == 1, done
    assert f"API port {held} on 127.0.0.1 is already in use by another process" in done.stderr
    assert "scorehost controlplane start --api-port PORT" in done.stderr
    assert "did not start within" not in done.stderr  # told as soon as it exited, not after the wait
    assert "Traceback" not in done.stderr
    assert _processes_of(home) == []


def test_a_gateway_port_in_use_refuses_to_start_naming_gateway_port(tmp_path: Path, held: int) -> None:
    home = tmp_path / "home"
    try:
        with pytest.raises(ScorehostError) as raised:
            start_control_plane(home, api_port=0, gateway_port=held, wait=60)
    finally:
        leftovers = _processes_of(home)
        stop_control_plane(home)
    message = raised.value.message
    assert message.startswith(
        f"the control plane could not start: the gateway's port {held} on 127.0.0.1 is already in use"
    )
    assert "scorehost controlplane start --gateway-port PORT" in message
    assert leftovers == []  # no gateway restarting in the background, no control plane
    assert not (home / "controlplane" / "address.json").exists()
    assert not (home / "controlplane" / "gateway.json").exists()
    assert f"port {held}" in (home / "controlplane" / "controlplane.log").read_text()  # logged too


def test_a_port_whose_listener_closed_with_a_connection_in_time_wait_is_free() -> None:
    """The probe binds as the gateway does: a port our own gateway just left (TIME_WAIT) must pass."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its port goes to TIME_WAIT
            client.recv(1)
    gateway_port("127.0.0.1", port).check_free()
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the TIME_WAIT; a listener all the same
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(ScorehostError, match="--gateway-port"):
            gateway_port("127.0.0.1", port).check_free()
