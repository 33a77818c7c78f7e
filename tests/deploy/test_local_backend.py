"""The local backend with real `scorehost serve` processes: start, failure, restarts, drain, adoption, logs."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scorehost.deploy.backends import (
    Backend,
    Backoff,
    DeploymentRecord,
    Handle,
    InstanceState,
    LocalBackend,
    LogSettings,
)
from scorehost.deploy.backends.local import serve_environment
from scorehost.deploy.backends.local_generation import Generation
from scorehost.deploy.backends.local_process import TOKEN_VARIABLE, kill_leftovers
from scorehost.deploy.backends.logfiles import last_lines
from scorehost.deploy.backends.logwriter import write_log
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeploymentFailed, DeploymentTimeout, InvalidSpec
from scorehost.registry import Registry

SCRIPTS = Path(__file__).parents[1] / "scripts"


def spec(script: str, name: str = "blue", **fields: Any) -> DeploymentSpec:
    return DeploymentSpec(endpoint="mnist", name=name, script=SCRIPTS / script, code_dir=SCRIPTS, **fields)


def home() -> Path:
    return Path(os.environ["SCOREHOST_HOME"])


def ours() -> list[int]:
    """Every live process that carries a deployment token of this test's workspace."""
    tokens = {json.loads(path.read_text())["token"] for path in home().glob("deployments/*/*/*/process.json")}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(f"{TOKEN_VARIABLE}={token}".encode() in environ for token in tokens):
                found.append(int(entry))
    return found


@pytest.fixture
def make_backend() -> Iterator[Callable[..., LocalBackend]]:
    """`make_backend(**options)`: a LocalBackend on this test's workspace; everything it started dies after."""
    made: list[LocalBackend] = []

    def _make(**options: Any) -> LocalBackend:
        backend = LocalBackend(home(), **options)
        made.append(backend)
        return backend

    yield _make
    for backend in made:
        for generation in list(backend._generations.values()):
            generation.stop(0)
    for path in home().glob("deployments/*/*/*/process.json"):
        state = json.loads(path.read_text())
        if state.get("pid"):
            kill_leftovers(state["pid"], state["token"])


def pid_of(handle: Handle) -> int:
    folder = home() / "deployments" / handle.endpoint / handle.deployment / str(handle.generation)
    return int(json.loads((folder / "process.json").read_text())["pid"])


def instance_client(url: str) -> httpx.Client:
    """A client for an instance at `unix:PATH`, as the local backend runs them."""
    transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
    return httpx.Client(transport=transport, base_url="http://localhost", timeout=10)


def score(url: str, data: object = 1) -> httpx.Response:
    with instance_client(url) as client:
        return client.post("/score", json={"data": data})


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def restarted(backend: LocalBackend, handle: Generation, times: int) -> bool:
    return backend.status(handle).restarts == times


def socket_closed(url: str) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        return sock.connect_ex(url.removeprefix("unix:")) != 0


def test_started_deployment_answers_on_its_targets(make_backend: Callable[..., LocalBackend], tmp_path: Path) -> None:
    backend: Backend = make_backend()  # mypy checks that LocalBackend implements the interface
    handle = backend.start(spec("echo.py", instances=2, serve_options={"timeout": 7}), 1)
    backend.wait_ready(handle, 20)
    [url] = backend.targets(handle)
    assert url.startswith("unix:/")
    path = Path(url.removeprefix("unix:"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # only this user reaches it, bypassing no key
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert score(url, [1, 2]).json() == {"received": "[1,2]"}
    status = backend.status(handle)
    assert status.state is InstanceState.READY
    assert status.to_json()["instances"][0]["state"] == "ready"
    assert status.restarts == 0
    pid = pid_of(handle)
    assert os.getsid(pid) == pid  # its own session: a Ctrl-C in the CLI's terminal does not reach it
    log = "\n".join(backend.logs(handle, lines=200))
    assert "workers: 2" in log
    assert "limits: 7.0 s per request" in log
    # The record is plain JSON, stable across restarts of the process.
    record = handle.record()
    assert DeploymentRecord.from_json(json.loads(record.dumps())) == record


def test_init_failure_is_reported_with_the_scripts_error_and_not_restarted(
    make_backend: Callable[..., LocalBackend],
) -> None:
    backend = make_backend()
    started = time.monotonic()
    handle = backend.start(spec("init_fails.py"), 1)
    with pytest.raises(DeploymentFailed) as failure:
        backend.wait_ready(handle, 20)
    assert time.monotonic() - started < 10
    assert "model file is corrupt" in failure.value.message  # the headline names the script's error
    assert "exited with code 3" in failure.value.message
    assert any("Traceback" in line for line in failure.value.log_tail)
    assert "last log lines:" in str(failure.value)
    time.sleep(1.5)  # longer than the first backoff: a restart loop would show by now
    status = backend.status(handle)
    assert status.state is InstanceState.FAILED
    assert status.restarts == 0
    assert status.last_error is not None
    assert "model file is corrupt" in status.last_error
    assert backend.targets(handle) == []
    assert ours() == []
    backend.stop(handle, drain_seconds=0)  # what the control plane does with it next: nothing left to end
    assert backend.status(handle).state is InstanceState.STOPPED


def test_registered_models_are_laid_out_from_the_workspace(
    make_backend: Callable[..., LocalBackend], tmp_path: Path
) -> None:
    (tmp_path / "labels.json").write_text("[]")
    with Registry(home()) as registry:
        registry.register("labels", tmp_path / "labels.json")
    backend = make_backend()
    handle = backend.start(spec("environment.py", models=("labels:1",)), 1)
    backend.wait_ready(handle, 20)
    seen = score(backend.targets(handle)[0]).json()
    assert seen["model_dir"].endswith("/labels/1")
    assert (Path(seen["model_dir"]) / "labels.json").read_text() == "[]"


def test_an_unknown_model_fails_the_deployment_naming_it(make_backend: Callable[..., LocalBackend]) -> None:
    backend = make_backend()
    handle = backend.start(spec("echo.py", models=("nosuch:3",)), 1)
    with pytest.raises(DeploymentFailed) as failure:
        backend.wait_ready(handle, 20)
    assert "nosuch" in failure.value.message, failure.value
    assert backend.status(handle).restarts == 0


def test_killed_process_is_restarted_with_backoff_and_the_cause_recorded(
    make_backend: Callable[..., LocalBackend],
) -> None:
    backend = make_backend(backoff=Backoff(initial=0.3, cap=0.6, reset_after=60))
    handle = backend.start(spec("echo.py"), 1)
    backend.wait_ready(handle, 20)
    [url] = backend.targets(handle)
    for restarts in (1, 2, 3):
        old = pid_of(handle)
        killed = time.monotonic()
        os.kill(old, signal.SIGKILL)
        wait_until(functools.partial(restarted, backend, handle, restarts))
        status = backend.status(handle)
        assert status.last_error == "killed by SIGKILL"
        assert status.state in (InstanceState.RESTARTING, InstanceState.STARTING, InstanceState.READY)
        backend.wait_ready(handle, 20)
        assert time.monotonic() - killed >= 0.3
        assert pid_of(handle) != old
        assert backend.targets(handle) == [url]  # the same socket again: the gateway's target stays put
        assert score(url).status_code == 200
    log = "\n".join(backend.logs(handle, lines=500))
    # 0.3 s, doubled, then held at the cap.
    delays = [line.rpartition("restarting it in ")[2] for line in log.splitlines() if "restarting it in" in line]
    assert delays == ["0.3 s", "0.6 s", "0.6 s"]
    assert "killed by SIGKILL" in log


def test_stop_lets_in_flight_requests_finish_then_closes_the_socket(
    make_backend: Callable[..., LocalBackend],
) -> None:
    backend = make_backend()
    handle = backend.start(spec("slow.py"), 1)
    backend.wait_ready(handle, 20)
    [url] = backend.targets(handle)
    answers: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answers.append(score(url, 1.0)))
    request.start()
    wait_until(lambda: any("sleeping 1.0 s" in line for line in backend.logs(handle, lines=20)))
    backend.stop(handle, drain_seconds=10)
    request.join(10)
    assert [answer.status_code for answer in answers] == [200]
    assert answers[0].json()["slept"] == 1.0
    assert socket_closed(url)
    assert backend.status(handle).state is InstanceState.STOPPED
    assert backend.targets(handle) == []
    assert ours() == []


def test_a_second_generation_runs_beside_the_first(make_backend: Callable[..., LocalBackend]) -> None:
    backend = make_backend()
    first = backend.start(spec("echo.py"), 1)
    second = backend.start(spec("prints.py"), 2)
    backend.wait_ready(first, 20)
    backend.wait_ready(second, 20)
    [old], [new] = backend.targets(first), backend.targets(second)
    assert old != new
    assert score(old).json() == {"received": "1"}
    assert score(new).json() == "printed"
    backend.stop(first, drain_seconds=5)
    assert socket_closed(old)
    assert score(new).json() == "printed"
    assert (home() / "deployments/mnist/blue/2/serve.log").exists()


def test_a_restarted_control_plane_adopts_running_deployments(make_backend: Callable[..., LocalBackend]) -> None:
    before = make_backend(backoff=Backoff(initial=0.2))
    handle = before.start(spec("echo.py"), 1)
    before.wait_ready(handle, 20)
    [url] = before.targets(handle)
    saved = handle.record().dumps()
    pid = pid_of(handle)
    before.close()  # the control plane exits; its deployments keep running
    assert score(url).status_code == 200

    after = make_backend(backoff=Backoff(initial=0.2))
    adopted = after.adopt(DeploymentRecord.from_json(json.loads(saved)))
    assert adopted is not None
    assert after.targets(adopted) == [url]
    assert after.status(adopted).state is InstanceState.READY
    assert score(url).json() == {"received": "1"}
    # Supervised again: a crash is restarted, although the process is not a child of this backend.
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: after.status(adopted).restarts == 1)
    assert "exit status is unknown" in (after.status(adopted).last_error or "")
    after.wait_ready(adopted, 20)
    assert score(url).status_code == 200
    after.stop(adopted, drain_seconds=5)
    assert socket_closed(url)
    assert ours() == []


def test_adopting_a_dead_or_foreign_process_gives_none(make_backend: Callable[..., LocalBackend]) -> None:
    before = make_backend()
    handle = before.start(spec("echo.py", instances=2), 1)
    before.wait_ready(handle, 20)
    [url] = before.targets(handle)
    record = handle.record()
    before.close()
    after = make_backend()
    # The same pid and port with another token: not ours, left alone.
    forged = DeploymentRecord("local", "mnist", "blue", 1, {"token": "0" * 32})
    assert after.adopt(forged) is None
    assert score(url).status_code == 200
    # The supervisor dies while no control plane watches: its workers follow it (they watch their supervisor),
    # and adopt() kills any that are slow to, so a restart finds the socket free.
    supervisor = pid_of(handle)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: supervisor not in ours())
    assert after.adopt(record) is None
    wait_until(lambda: ours() == [])
    wait_until(lambda: socket_closed(url), timeout=2)


def test_adopting_a_process_that_never_becomes_ready_stops_it(
    make_backend: Callable[..., LocalBackend], tmp_path: Path
) -> None:
    before = make_backend()
    handle = before.start(spec("waits_in_init.py", environment={"RELEASE_INIT": str(tmp_path / "go")}), 1)
    wait_until(lambda: (handle.folder / "process.json").exists())
    before.close()
    after = make_backend(adopt_timeout=0.5)
    assert after.adopt(handle.record()) is None
    wait_until(lambda: ours() == [])


def test_logs_are_rotated_by_size_and_followed(make_backend: Callable[..., LocalBackend]) -> None:
    # Files kept: enough that a follower never falls behind the oldest, whatever this machine's speed.
    backend = make_backend(logs=LogSettings(max_bytes=3000, keep=12))
    handle = backend.start(spec("prints.py"), 1)
    backend.wait_ready(handle, 20)
    [url] = backend.targets(handle)
    followed: list[str] = []
    follower = threading.Thread(target=lambda: followed.extend(backend.logs(handle, follow=True, lines=5)))
    follower.start()
    with instance_client(url) as client:
        for index in range(60):
            assert client.post("/score", json={"data": index}).status_code == 200
    # Access lines are written in batches (every 50 ms), so a batch may land after the last print: look far enough.
    wait_until(lambda: any("hello from run: 59" in line for line in backend.logs(handle, lines=30)))
    files = sorted(handle.folder.glob("serve.log*"))
    assert len(files) >= 4
    assert all(path.stat().st_size <= 3000 for path in files)
    last = list(backend.logs(handle, lines=30))  # reaches back across files
    assert len(last) == 30
    assert any("hello from run: 59" in line for line in last)
    backend.stop(handle, drain_seconds=5)
    follower.join(10)
    assert not follower.is_alive()  # following ends when the deployment stops
    ran = [line.rpartition(": ")[2] for line in followed if "hello from run:" in line]
    assert ran == [str(index) for index in range(60)]  # across every rotation, none lost or repeated
    assert any("SIGTERM received" in line for line in followed)  # to the last line


def test_the_log_writer_keeps_a_few_files_within_their_size(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    lines = [f"line {index:04d} ".ljust(99, "x") + "\n" for index in range(100)]  # 100 bytes each
    writer = threading.Thread(target=write_log, args=(read_end, tmp_path / "serve.log", 1000, 2))
    writer.start()
    for line in lines:
        os.write(write_end, line.encode())
    os.close(write_end)
    writer.join(10)
    os.close(read_end)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["serve.log", "serve.log.1", "serve.log.2"]
    kept = "".join((tmp_path / name).read_text() for name in ("serve.log.2", "serve.log.1", "serve.log"))
    assert kept == "".join(lines[-len(kept) // 100 :])  # whole lines, in order, the newest kept
    assert all((tmp_path / name).stat().st_size <= 1000 for name in ("serve.log.2", "serve.log.1", "serve.log"))
    assert last_lines(tmp_path / "serve.log", 2, 25) == [line.rstrip("\n") for line in lines[-25:]]


def test_wait_ready_times_out_with_a_clear_message(make_backend: Callable[..., LocalBackend], tmp_path: Path) -> None:
    release = tmp_path / "go"
    backend = make_backend()
    handle = backend.start(spec("waits_in_init.py", environment={"RELEASE_INIT": str(release)}), 1)
    started = time.monotonic()
    with pytest.raises(DeploymentTimeout) as timeout:
        backend.wait_ready(handle, 0.5)
    assert isinstance(timeout.value, TimeoutError)
    assert time.monotonic() - started < 3
    assert "did not become ready within 0.5 s" in str(timeout.value)
    assert backend.status(handle).state is InstanceState.STARTING
    release.touch()  # init() finishes: the same generation becomes ready
    backend.wait_ready(handle, 20)
    assert score(backend.targets(handle)[0]).json() == "initialised"


def test_serve_options_become_variables_that_no_key_can_turn_into_a_flag() -> None:
    assert serve_environment(
        {"timeout": 5, "preload": True, "run_input": "data", "cors_origins": ["a", "b"], "max_body_size": "1MiB"}
    ) == {
        "SCOREHOST_TIMEOUT": "5.0",
        "SCOREHOST_PRELOAD": "true",
        "SCOREHOST_RUN_INPUT": "data",
        "SCOREHOST_CORS_ORIGINS": "a,b",
        "SCOREHOST_MAX_BODY_SIZE": "1048576",
    }
    assert serve_environment({"preload": False, "scoring_timeout_ms": 100}) == {
        "SCOREHOST_PRELOAD": "false",
        "SCORING_TIMEOUT_MS": "100",  # the field's own variable
    }
    # A spec stored before options were checked at the API: refused again here, so the generation fails saying why.
    for smuggled in ({"workers=3": True}, {"uds": "@name"}, {"port": 1}, {"timeout": "5 --workers 3"}):
        with pytest.raises(InvalidSpec, match="serve option|is not a serve option"):
            serve_environment(smuggled)


def test_a_smuggled_option_in_a_stored_spec_fails_the_generation_with_the_reason(
    make_backend: Callable[..., LocalBackend],
) -> None:
    backend = make_backend()
    with pytest.raises(InvalidSpec, match="'workers=3' is not a serve option"):
        backend.start(spec("echo.py", serve_options={"workers=3": True}), 1)
    assert ours() == []


def test_a_python_environment_the_backend_cannot_build_is_refused_at_check(
    make_backend: Callable[..., LocalBackend],
) -> None:
    """Before anything is stored (the API answers 400): a specification uv must not see, a Python not installed."""
    from scorehost.errors import InvalidEnvironment, PythonNotFound

    backend = make_backend()
    backend.check(spec("echo.py", python_environment={"requirements": ["six==1.16.0"]}))  # fine
    with pytest.raises(InvalidEnvironment, match="is not a requirement"):
        backend.check(spec("echo.py", python_environment={"requirements": ["--index-url http://elsewhere"]}))
    with pytest.raises(PythonNotFound, match="3.9"):
        backend.check(spec("echo.py", python_environment={"python": "3.9", "requirements": []}))


def test_a_deployment_spreads_its_instances_over_the_devices_it_names(
    make_backend: Callable[..., LocalBackend], tmp_path: Path
) -> None:
    backend = make_backend()
    environment = {"DEVICES_REPORT_DIR": str(tmp_path)}
    handle = backend.start(
        spec("reports_devices.py", instances=2, environment=environment, serve_options={"devices": "0,1"}), 1
    )
    backend.wait_ready(handle, 20)
    wait_until(lambda: len(list(tmp_path.glob("init-*.json"))) == 2, 20)  # ready as soon as one worker serves
    seen = sorted(json.loads(path.read_text())["CUDA_VISIBLE_DEVICES"] for path in tmp_path.glob("init-*.json"))
    assert seen == ["0", "1"]
    assert "devices: worker 1: GPU 0, worker 2: GPU 1" in "\n".join(backend.logs(handle, lines=200))
    assert serve_environment({"devices": "1, 0"}) == {"SCOREHOST_DEVICES": "1,0"}
    with pytest.raises(InvalidSpec, match="workers_per_device' is set by the control plane"):
        serve_environment({"workers_per_device": 2})
