"""Reading GPUs through NVML: nothing (None) on this machine, which has no NVIDIA library; and through a stand-in
`pynvml` (tests/scripts/fake_nvml), what is read, what a GPU that cannot say something still reports, and that
every reading shuts NVML down."""

from __future__ import annotations

import ctypes.util
import sys

import pytest
from _fake_nvml import GIB, fake_nvml
from _fake_nvml import fake_gpu as gpu

from scorehost.devices.nvml import GpuReading, read_gpus


@pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has NVIDIA's library")
def test_without_nvidias_library_there_is_nothing_to_read() -> None:
    assert read_gpus() is None


def test_without_the_binding_there_is_nothing_to_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert read_gpus() is None


def test_each_gpu_is_read_and_nvml_shut_down(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(monkeypatch, [gpu("GPU-aaaa", used=3 * GIB, utilization=37, pids=[41, 42]), gpu("GPU-bbbb")])
    assert read_gpus() == [
        GpuReading(0, "GPU-aaaa", "NVIDIA Test", 3 * GIB, 80 * GIB, 0.37, (41, 42)),
        GpuReading(1, "GPU-bbbb", "NVIDIA Test", GIB, 80 * GIB, 0.5, ()),
    ]
    assert nvml.sessions == 0


def test_what_a_gpu_cannot_say_leaves_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(
        monkeypatch,
        [gpu("GPU-aaaa", utilization=None, pids=None), {"lost": True}, gpu("GPU-cccc", pids=[7])],
    )
    readings = read_gpus()
    assert readings == [
        GpuReading(0, "GPU-aaaa", "NVIDIA Test", GIB, 80 * GIB, None, ()),  # utilization, processes: not supported
        GpuReading(2, "GPU-cccc", "NVIDIA Test", GIB, 80 * GIB, 0.5, (7,)),  # GPU 1 is lost: left out
    ]
    assert nvml.sessions == 0


def test_nvml_failing_to_start_is_nothing_to_read(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(monkeypatch, [gpu("GPU-aaaa")])
    monkeypatch.setenv("FAKE_NVML_INIT_ERROR", "12")  # NVML_ERROR_LIBRARY_NOT_FOUND
    assert read_gpus() is None
    assert nvml.sessions == 0


def test_no_gpu_is_an_empty_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, [])
    assert read_gpus() == []
