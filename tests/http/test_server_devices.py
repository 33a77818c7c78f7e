"""GPU placement with real `scorehost serve` processes on a machine without a GPU: what each worker's environment
holds (`--devices`, `--workers-per-device`, a stand-in nvidia-smi for `auto`), `init_worker()` after a
`--preload`, and the refusal to fork once init() initialized CUDA."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, kill, start_server, wait_ready

TWO_GPUS = "0, GPU-1111-aaaa, NVIDIA Test 80GB, 81559\n1, GPU-2222-bbbb, NVIDIA Test 80GB, 81559\n"


def reports(folder: Path, step: str, count: int, timeout: float = 30) -> list[dict[str, str]]:
    """The `count` reports of `step` the workers wrote (tests/scripts/reports_devices.py), by worker index."""
    deadline = time.monotonic() + timeout
    while True:
        found = [json.loads(path.read_text()) for path in folder.glob(f"{step}-*.json")]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) == count, found
    return sorted(found, key=lambda report: report["SCOREHOST_WORKER_INDEX"] or "")


def with_fake_nvidia_smi(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds a stand-in nvidia-smi listing two GPUs."""
    folder = tmp_path / "bin"
    folder.mkdir()
    tool = folder / "nvidia-smi"
    tool.write_text(f'#!/bin/sh\nprintf "{TWO_GPUS}"\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_four_workers_on_two_named_devices_each_see_their_own(tmp_path: Path) -> None:
    server = start_server(
        [str(SCRIPTS / "reports_devices.py"), "--workers", "4", "--devices", "0,1"],
        env={"DEVICES_REPORT_DIR": str(tmp_path)},
    )
    try:
        wait_ready(server)
        seen = reports(tmp_path, "init", 4)
        assert [(r["SCOREHOST_WORKER_INDEX"], r["CUDA_VISIBLE_DEVICES"]) for r in seen] == [
            ("1", "0"),
            ("2", "1"),
            ("3", "0"),
            ("4", "1"),
        ]
        assert {r["CUDA_DEVICE_ORDER"] for r in seen} == {"PCI_BUS_ID"}
        assert [r["pid"] for r in reports(tmp_path, "init_worker", 4)] == [r["pid"] for r in seen]  # after init()
        server.wait_for_log(r"devices: worker 1: GPU 0, worker 2: GPU 1, worker 3: GPU 0, worker 4: GPU 1")
        # A replacement takes the devices of the worker it replaces.
        third = next(r for r in seen if r["SCOREHOST_WORKER_INDEX"] == "3")
        os.kill(third["pid"], signal.SIGKILL)  # type: ignore[arg-type]
        again = [r for r in reports(tmp_path, "init", 5) if r["SCOREHOST_WORKER_INDEX"] == "3"]
        assert [r["CUDA_VISIBLE_DEVICES"] for r in again] == ["0", "0"]
    finally:
        kill(server)


def test_workers_per_device_over_the_gpus_nvidia_smi_lists(tmp_path: Path) -> None:
    env = {"DEVICES_REPORT_DIR": str(tmp_path), **with_fake_nvidia_smi(tmp_path)}
    server = start_server([str(SCRIPTS / "reports_devices.py"), "--workers-per-device", "2"], env=env)
    try:
        wait_ready(server)
        seen = reports(tmp_path, "init", 4)
        assert [r["CUDA_VISIBLE_DEVICES"] for r in seen] == ["0", "1", "0", "1"]
        server.wait_for_log(r"workers: 4,")
        server.wait_for_log(r"devices: 2 GPU\(s\) found by nvidia-smi: GPU 0: NVIDIA Test 80GB, 85.5 GB; GPU 1")
    finally:
        kill(server)


def test_without_a_gpu_nothing_changes_and_the_log_says_so_once(tmp_path: Path) -> None:
    server = start_server(
        [str(SCRIPTS / "reports_devices.py"), "--workers", "2"],
        env={"DEVICES_REPORT_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_ready(server)
        assert {(r["CUDA_VISIBLE_DEVICES"], r["SCOREHOST_WORKER_INDEX"]) for r in reports(tmp_path, "init", 2)} == {
            (None, None)
        }
        assert sum("devices: no GPU found" in line for line in server.lines) == 1
    finally:
        kill(server)


def test_preload_runs_init_once_and_init_worker_in_each_worker_on_its_device(tmp_path: Path) -> None:
    server = start_server(
        [str(SCRIPTS / "reports_devices.py"), "--preload", "--workers", "2", "--devices", "0,1"],
        env={"DEVICES_REPORT_DIR": str(tmp_path)},
    )
    try:
        wait_ready(server)
        [init] = reports(tmp_path, "init", 1)
        assert init["pid"] == server.process.pid
        assert init["CUDA_VISIBLE_DEVICES"] is None
        per_worker = reports(tmp_path, "init_worker", 2)
        assert [(r["SCOREHOST_WORKER_INDEX"], r["CUDA_VISIBLE_DEVICES"]) for r in per_worker] == [
            ("1", "0"),
            ("2", "1"),
        ]
        with server.client() as client:
            assert client.post("/score", json={"data": 1}).json()["devices"] in ("0", "1")
    finally:
        kill(server)


def test_preload_refuses_to_fork_once_init_initialized_cuda() -> None:
    server = start_server([str(SCRIPTS / "preload_initializes_cuda.py"), "--preload", "--workers", "2"])
    try:
        assert server.wait_exit(60) == 3
        assert "init() initialized the GPU while preloading (torch.cuda.is_initialized() is True)" in server.log
        assert "serve without --preload" in server.log
        assert "init_worker()" in server.log
        assert "listening on" not in server.log
    finally:
        kill(server)


def test_the_same_script_serves_without_preload() -> None:
    server = start_server([str(SCRIPTS / "preload_initializes_cuda.py"), "--workers", "2"])
    try:
        wait_ready(server)
        with server.client() as client:
            assert client.post("/score", json={"data": [1]}).status_code == 200
    finally:
        kill(server)


def test_a_failing_init_worker_stops_the_server_with_its_error() -> None:
    server = start_server([str(SCRIPTS / "init_worker_fails.py"), "--preload"])
    try:
        assert server.wait_exit(60) == 3
        assert "init_worker() in init_worker_fails.py raised RuntimeError: CUDA error: out of memory" in server.log
    finally:
        kill(server)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--devices", "0,7"], "--devices 0,7: no GPU 7 on this machine; nvidia-smi lists 0 (GPU-1111-aaaa), 1"),
        (["--workers", "3", "--workers-per-device", "2"], "--workers 3 and --workers-per-device 2 disagree"),
        (["--devices", "0,0"], "names a device twice"),
    ],
)
def test_placements_that_cannot_be_are_refused_before_anything_starts(
    tmp_path: Path, args: list[str], said: str
) -> None:
    server = start_server([str(SCRIPTS / "reports_devices.py"), *args], env=with_fake_nvidia_smi(tmp_path))
    try:
        assert server.wait_exit(60) == 2
        assert said in server.log
    finally:
        kill(server)
