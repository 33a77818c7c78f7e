"""Which GPUs each worker sees, from `--devices`, `--workers`, `--workers-per-device` and the machine's GPUs."""

from __future__ import annotations

import pytest

from scorehost.devices.discovery import Gpu, GpuSearch
from scorehost.devices.placement import Placement, PlacementError, parse_devices, plan_placement, spread

TWO = GpuSearch((Gpu("0", "GPU-aaaa", "NVIDIA T", 16 << 30), Gpu("1", "GPU-bbbb", "NVIDIA T", 16 << 30)), "NVML")
NONE_FOUND = GpuSearch((), "NVML unavailable, no nvidia-smi on PATH")


def plan(devices: str, workers: int, per_device: int | None = None, **kwargs: object) -> Placement:
    kwargs.setdefault("environ", {})
    kwargs.setdefault("search", lambda: TWO)
    return plan_placement(parse_devices(devices), workers, per_device, **kwargs)  # type: ignore[arg-type]


def test_four_workers_on_two_devices_go_round_them() -> None:
    placement = plan("0,1", 4)
    assert placement.per_worker == (("0",), ("1",), ("0",), ("1",))
    assert [placement.environment(i, {})["CUDA_VISIBLE_DEVICES"] for i in range(1, 5)] == ["0", "1", "0", "1"]
    assert placement.environment(3, {}) == {
        "CUDA_VISIBLE_DEVICES": "0",
        "SCOREHOST_WORKER_INDEX": "3",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # NVML's numbering, which --devices and the log use
    }
    assert "worker 1: GPU 0, worker 2: GPU 1, worker 3: GPU 0, worker 4: GPU 1" in placement.lines[-1]


def test_a_user_device_order_is_kept() -> None:
    assert "CUDA_DEVICE_ORDER" not in plan("0,1", 2).environment(1, {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})


def test_workers_per_device_sets_the_worker_count() -> None:
    placement = plan("auto", 1, 2)
    assert placement.workers == 4
    assert placement.per_worker == (("0",), ("1",), ("0",), ("1",))
    assert "found by NVML: GPU 0: NVIDIA T" in placement.lines[0]


def test_workers_per_device_and_a_different_worker_count_are_refused() -> None:
    with pytest.raises(PlacementError, match=r"--workers 3 and --workers-per-device 2 disagree: .* = 4 workers"):
        plan("auto", 3, 2, workers_given=True)
    assert plan("auto", 4, 2, workers_given=True).workers == 4  # agreeing is fine


def test_fewer_workers_than_devices_share_them_out_in_groups() -> None:
    assert spread(["0", "1", "2", "3"], 2) == (("0", "1"), ("2", "3"))
    assert spread(["0", "1", "2"], 2) == (("0", "1"), ("2",))
    assert spread(["0", "1"], 3) == (("0",), ("1",), ("0",))
    placement = plan("auto", 1)
    assert placement.environment(1, {})["CUDA_VISIBLE_DEVICES"] == "0,1"  # one worker: every GPU, as before


def test_no_gpu_changes_nothing_and_says_so_once() -> None:
    placement = plan("auto", 3, search=lambda: NONE_FOUND)
    assert not placement.active
    assert placement.workers == 3
    assert placement.environment(1, {}) == {}
    assert placement.lines == (
        "devices: no GPU found (NVML unavailable, no nvidia-smi on PATH); the workers run on the CPU",
    )
    with pytest.raises(PlacementError, match="--workers-per-device needs GPUs, and no GPU found"):
        plan("auto", 1, 2, search=lambda: NONE_FOUND)


def test_none_hides_every_gpu() -> None:
    placement = plan("none", 2)
    assert placement.environment(2, {})["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(PlacementError, match="--devices none hides them"):
        plan("none", 1, 2)


def test_auto_takes_the_devices_cuda_visible_devices_allows() -> None:
    placement = plan("auto", 2, environ={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert placement.per_worker == (("2",), ("3",))
    assert "from CUDA_VISIBLE_DEVICES" in placement.lines[0]
    for hidden in ("", "-1", " "):
        assert not plan("auto", 2, environ={"CUDA_VISIBLE_DEVICES": hidden}).active


def test_devices_the_machine_lacks_are_refused_with_what_it_has() -> None:
    with pytest.raises(PlacementError, match=r"no GPU 5 on this machine; NVML lists 0 \(GPU-aaaa\), 1 \(GPU-bbbb\)"):
        plan("0,5", 2)
    assert plan("GPU-bbbb", 1).per_worker == (("GPU-bbbb",),)  # a UUID names one too
    unchecked = plan("0,1", 2, search=lambda: NONE_FOUND)
    assert unchecked.active
    assert "not checked" in unchecked.lines[0]


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("auto", "auto"),
        (" NONE ", "none"),
        ("0, 1", "0,1"),
        ("GPU-8f2c1e0a-1b2c", "GPU-8f2c1e0a-1b2c"),
        ("MIG-GPU-x/1/0", "MIG-GPU-x/1/0"),
    ],
)
def test_device_lists_are_normalised(given: str, normalised: str) -> None:
    assert parse_devices(given) == normalised


@pytest.mark.parametrize("given", ["0,0", "0,,1", "0;1", "gpu 0"])
def test_bad_device_lists_say_what_to_write(given: str) -> None:
    with pytest.raises(ValueError, match="auto, none, or GPU indices|names a device twice"):
        parse_devices(given)
