"""The control-plane process under faults, with a real control plane, gateway and deployments: a failed update
survives a crash or a restart of the control plane, a killed gateway is restarted and `status` says so, and the
log is rotated and holds no token."""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from _control_plane import free_port

from scorehost.client import Client
from scorehost.deploy.controlplane.daemon import (
    _token,
    control_plane_status,
    start_control_plane,
    stop_control_plane,
)
from scorehost.errors import ScorehostError

SCRIPTS = Path(__file__).parents[1] / "scripts"
WHOAMI = SCRIPTS / "whoami"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    workspace = tmp_path / "home"
    yield workspace
    stop_control_plane(workspace)


def _start(home: Path, gateway_port: int) -> Client:
    return Client(address=start_control_plane(home, api_port=0, gateway_port=gateway_port), timeout=30)


def _until(condition: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    """`condition()` once it is truthy (errors count as not yet), within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value := condition():
                return value
        except (ScorehostError, httpx.HTTPError):
            pass
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


class Load:
    """Scoring requests one after another in a thread, while a `with` block lasts; every status counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: collections.Counter[int | str] = collections.Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post(self.url, json={"data": 0})
                except httpx.HTTPError as error:
                    self.statuses[type(error).__name__] += 1
                    self.failures.append(repr(error))
                    continue
                self.statuses[answer.status_code] += 1
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code} {answer.text}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(60)


def _with_a_failed_update(client: Client) -> tuple[str, int]:
    """Endpoint mnist: generation 1 of blue serves; generation 2 (init() raises) failed. Its URL and serving pid."""
    client.create_endpoint("mnist", auth="none")
    client.create_deployment("mnist", "blue", script="score.py", code_dir=WHOAMI)
    _until(lambda: client.get_deployment("mnist", "blue")["status"]["state"] == "ready", what="generation 1 ready")
    client.update_deployment("mnist", "blue", script=SCRIPTS / "init_fails.py", code_dir=SCRIPTS)
    _failed_again(client)
    return client.get_endpoint("mnist")["scoring_uri"], client.invoke("mnist", 0)["pid"]


def _failed_again(client: Client) -> dict[str, Any]:
    """The deployment once its declared generation 2 has failed (again) while generation 1 serves."""

    def failed() -> dict[str, Any] | None:
        deployment = client.get_deployment("mnist", "blue")
        settled = deployment["status"]["state"] != "updating"  # a restarted control plane is retrying generation 2
        return deployment if settled and "model file is corrupt" in str(deployment["status"].get("error")) else None

    deployment: dict[str, Any] = _until(failed, what="generation 2 failed")
    return deployment


def _declared_and_serving(deployment: dict[str, Any]) -> None:
    """The state says which generation is declared (2, failed) and which serves (1)."""
    assert (deployment["generation"], deployment["serving_generation"]) == (2, 1), deployment
    assert "model file is corrupt" in deployment["failure"]
    assert deployment["status"]["state"] == "ready", deployment  # it serves: generation 1
    assert (deployment["status"]["serving_generation"], deployment["status"]["declared_generation"]) == (1, 2)


def test_a_failed_update_and_a_crash_of_the_control_plane_leave_the_endpoint_serving(home: Path) -> None:
    """Issue 16.1: the restarted control plane used to stop generation 1 and start the broken generation 2."""
    port = free_port()
    with _start(home, port) as client:
        url, pid = _with_a_failed_update(client)
    gateway = control_plane_status(home)["processes"]["gateway"]
    with Load(url) as load:
        os.kill(json.loads((home / "controlplane" / "address.json").read_text())["pid"], signal.SIGKILL)
        time.sleep(0.5)
        client = _start(home, port)
        deployment = _failed_again(client)  # generation 2 is retried in the background, and fails again
        time.sleep(1)
    with client:
        assert load.failures == [], load.statuses
        assert load.statuses[200] > 0
        _declared_and_serving(deployment)
        assert client.invoke("mnist", 0)["pid"] == pid  # generation 1 was adopted, not restarted
    again = control_plane_status(home)["processes"]["gateway"]
    assert (again["pid"], again["restarts"], again["alive"]) == (gateway["pid"], 0, True)  # adopted, not doubled


def test_a_failed_update_and_a_stop_and_start_bring_back_the_generation_that_served(home: Path) -> None:
    """Issue 16.1 after `controlplane stop` (or a reboot): nothing runs, and generation 1 must come back first."""
    port = free_port()
    with _start(home, port) as client:
        url, _ = _with_a_failed_update(client)
    assert stop_control_plane(home)
    with _start(home, port) as client:
        _until(lambda: httpx.post(url, json={"data": 0}).status_code == 200, what="generation 1 serving again")
        with Load(url) as load:
            deployment = _failed_again(client)
            time.sleep(1)
        listed = client.list_deployments("mnist")
    assert load.failures == [], load.statuses
    _declared_and_serving(deployment)
    assert [(d["generation"], d["serving_generation"]) for d in listed] == [(2, 1)]


def test_a_killed_gateway_is_restarted_and_status_tells_the_truth(home: Path) -> None:
    """Issue 16.2: a gateway killed with SIGKILL stayed dead, and `controlplane status` still said "running"."""
    with _start(home, free_port()) as client:
        client.create_endpoint("mnist", auth="none")
        client.create_deployment("mnist", "blue", script="score.py", code_dir=WHOAMI)
        _until(lambda: client.invoke("mnist", 0), what="the deployment answering")
        before = control_plane_status(home)
        assert before["healthy"], before
        gateway = before["processes"]["gateway"]
        assert (gateway["alive"], gateway["restarts"]) == (True, 0)
        assert before["processes"]["control_plane"]["alive"]
        [deployment] = before["processes"]["deployments"]
        assert (deployment["deployment"], deployment["serving"], deployment["state"]) == ("blue", True, "ready")
        assert deployment["instances"][0]["pid"]

        os.kill(gateway["pid"], signal.SIGKILL)
        # While it waits out its backoff, status says it is down, and why.
        down = _until(lambda: (s := control_plane_status(home))["processes"]["gateway"]["state"] == "restarting" and s)
        assert (down["healthy"], down["processes"]["gateway"]["alive"]) == (False, False)
        assert down["processes"]["gateway"]["last_error"] == "killed by SIGKILL"

        answer = _until(lambda: client.invoke("mnist", 0), timeout=30, what="the gateway answering again")
        assert answer["deployment"] == "?"
        after = _until(lambda: (s := control_plane_status(home))["healthy"] and s)["processes"]["gateway"]
        assert after["pid"] != gateway["pid"]
        assert (after["restarts"], after["last_error"]) == (1, "killed by SIGKILL")
        assert client.status()["gateway"]["pid"] == after["pid"]  # the same report, from Python
    log = (home / "controlplane" / "controlplane.log").read_text()
    assert f"gateway (pid {gateway['pid']}, up " in log
    assert "killed by SIGKILL; restarting it in 1 s" in log


def test_a_stopped_gateway_is_killed_and_restarted(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway stopped with SIGSTOP still accepts connections (the kernel does) but answers nothing: its exit alone
    never shows it. The control plane asks it GET / and replaces it when it stays silent."""
    monkeypatch.setenv("SCOREHOST_CONTROLPLANE_GATEWAY_PROBE_TIMEOUT", "3")
    with _start(home, free_port()) as client:
        client.create_endpoint("mnist", auth="none")
        client.create_deployment("mnist", "blue", script="score.py", code_dir=WHOAMI)
        _until(lambda: client.invoke("mnist", 0), what="the deployment answering")
        gateway = control_plane_status(home)["processes"]["gateway"]
        os.kill(gateway["pid"], signal.SIGSTOP)
        _until(lambda: client.invoke("mnist", 0), timeout=60, what="a new gateway answering")
        after = _until(lambda: (s := control_plane_status(home))["healthy"] and s)["processes"]["gateway"]
        assert after["pid"] != gateway["pid"]
        assert after["restarts"] == 1
        assert after["last_error"].startswith("killed by SIGKILL: it is stopped (SIGSTOP/SIGTSTP)")
    log = (home / "controlplane" / "controlplane.log").read_text()
    assert f"gateway (pid {gateway['pid']}) is stopped (SIGSTOP/SIGTSTP): no answer to GET / for " in log


def test_the_log_is_rotated_and_holds_no_token(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16.18: controlplane.log grew forever, and a token sent in a query string was written to it."""
    monkeypatch.setenv("SCOREHOST_CONTROLPLANE_LOG_MAX_SIZE", "8KiB")
    monkeypatch.setenv("SCOREHOST_CONTROLPLANE_LOG_BACKUPS", "2")
    folder = home / "controlplane"
    with _start(home, free_port()) as client:
        token = client.address.token
        secrets = {"token": "tok-0123456789", "key": "key-0123456789", "access_token": token, "code": "code-01234567"}
        query = "&".join(f"{name}={value}" for name, value in secrets.items())
        with httpx.Client(base_url=client.address.api, headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(2000):  # each a refused change: one INFO line
                assert http.post(f"/api/v1/endpoints?{query}", json={"name": "x"}).status_code == 400
                if (folder / "controlplane.log.2").exists():
                    break
            http.get(f"/api/v1/nothing?{query}")  # a 404: logged too
    logs = sorted(folder.glob("controlplane.*")) + sorted(folder.glob("gateway.*"))
    assert folder / "controlplane.log.2" in logs
    assert not (folder / "controlplane.log.3").exists()
    for path in logs:
        if path.suffix == ".json":
            continue
        text = path.read_text()
        assert path.stat().st_size <= 8 * 1024, path
        for name, value in secrets.items():
            assert value not in text, f"{name} in {path}"
    assert (
        "/api/v1/endpoints?token=[redacted]&key=[redacted]&access_token=[redacted]&code=[redacted] 400"
        in (folder / "controlplane.log.1").read_text()
    )


def test_a_token_an_older_version_left_readable_is_made_private(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("older-token\n")
    token.chmod(0o644)
    assert _token(tmp_path) == "older-token"
    assert token.stat().st_mode & 0o777 == 0o600
