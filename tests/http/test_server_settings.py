"""Loading and settings: where the script runs from, the model folder, binding, and the reference's variables."""

from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import SCRIPTS, Server, kill, start_server, wait_ready

Serve = Callable[..., Server]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_model_loads_relative_to_the_script_with_a_sibling_import(serve: Serve, tmp_path: Path) -> None:
    # Started from elsewhere: the script's folder is the working directory and importable.
    server = serve(SCRIPTS / "local_model" / "score.py")
    with server.client() as client:
        response = client.post("/score", json={"data": [[1, 2], [0, 0]]})
    assert response.status_code == 200, server.log
    assert response.json() == [2 * 1 + 10 * 4 + 0.5, 0.5]


def test_script_environment(serve: Serve, tmp_path: Path) -> None:
    server = serve("environment.py", "--model-dir", str(tmp_path))
    with server.client() as client:
        seen = client.post("/score", json={"data": None}).json()
    assert seen == {
        "model_dir": str(tmp_path),
        "cwd": str(SCRIPTS.resolve()),
        "module": "entry_module",
        "script_dir_importable": True,
    }
    assert f"model dir: {tmp_path}" in server.log


def test_model_dir_underscore_alias_and_azureml_model_dir_variable(serve: Serve, tmp_path: Path) -> None:
    by_flag = serve("environment.py", "--model_dir", str(tmp_path / "flag"))
    by_env = serve("environment.py", env={"AZUREML_MODEL_DIR": str(tmp_path / "env")})
    for server, expected in ((by_flag, "flag"), (by_env, "env")):
        with server.client() as client:
            assert client.post("/score", json={"data": 1}).json()["model_dir"] == str(tmp_path / expected)


def test_no_model_dir_is_said_in_the_log(serve: Serve) -> None:
    server = serve("environment.py")
    with server.client() as client:
        assert client.post("/score", json={"data": 1}).json()["model_dir"] is None
    assert "AZUREML_MODEL_DIR not set (use --model-dir if init() needs it)" in server.log


def test_entry_script_from_azureml_variable_and_port_from_server_port() -> None:
    port = free_port()
    server = start_server([], env={"AZUREML_ENTRY_SCRIPT": str(SCRIPTS / "echo.py"), "SERVER_PORT": str(port)})
    try:
        wait_ready(server)
        assert server.url == f"http://127.0.0.1:{port}"
        assert f"serving {SCRIPTS.resolve() / 'echo.py'}" in server.log
        assert httpx.post(f"{server.url}/score", json={"data": [1]}).json() == {"received": "[1]"}
    finally:
        kill(server)


def test_worker_count_and_scoring_timeout_variables(serve: Serve) -> None:
    server = serve("echo.py", env={"WORKER_COUNT": "2", "SCORING_TIMEOUT_MS": "1500"})
    assert "workers: 2, run() threads per worker: 1" in server.log
    assert "limits: 1.5 s per request (queue + run())" in server.log
    server.wait_for_log(r"ready: 2 worker\(s\) serving")


def test_flags_win_over_variables(serve: Serve) -> None:
    server = serve("echo.py", "--workers", "1", "--timeout", "7", env={"WORKER_COUNT": "2", "SCORING_TIMEOUT_MS": "1"})
    assert "workers: 1," in server.log
    assert "limits: 7.0 s per request" in server.log


def other_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent, the kernel just picks a source
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_host_defaults_to_loopback(serve: Serve) -> None:
    server = serve("echo.py")
    assert server.url.startswith("http://127.0.0.1:")
    address = other_address()
    if address is not None:  # bound to loopback only: the machine's other address refuses the port
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}:{port}/", timeout=5)


def test_readiness_waits_for_init_while_liveness_answers(serve: Serve, tmp_path: Path) -> None:
    release = tmp_path / "release"
    server = serve("waits_in_init.py", env={"RELEASE_INIT": str(release)}, ready=False)
    line = server.wait_for_log(r"starting on http://")  # bound, init() running: not "listening on" yet
    url = line.split("starting on ")[1].split()[0]
    with httpx.Client(base_url=url, timeout=30) as client:
        live = client.get("/live")  # liveness answers while init() runs
        assert live.status_code == 200
        assert live.json() == {"status": "alive"}
        # GET / is readiness, as on the reference: 503 until init() has returned.
        health = client.get("/")
        assert health.status_code == 503
        assert health.json() == {"message": "init() has not finished yet; GET /live answers while it runs."}
        loading = client.get("/ready")
        assert loading.status_code == 503
        assert loading.json() == {"status": "loading", "message": "init() has not finished yet."}
        # A scoring request sent while init() runs waits for it, then succeeds.
        with ThreadPoolExecutor(1) as pool:
            scoring = pool.submit(httpx.post, f"{url}/score", json={"data": 1}, timeout=30)
            release.touch()
            assert scoring.result().json() == "initialised"
        assert client.get("/ready").json() == {"status": "ready"}
        ready = client.get("/")
        assert ready.status_code == 200
        assert ready.text == "Healthy"
        assert client.get("/live").json() == {"status": "alive"}
