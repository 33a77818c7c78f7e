"""What NVML says about this machine's GPUs, read on demand: memory, utilization and compute processes.

NVML comes with NVIDIA's driver; its Python binding is `nvidia-ml-py` (the `gpu` extra). Without either there
is nothing to read: `read_gpus()` answers None, never raises. Each reading opens NVML and shuts it down before
returning, so no NVML state outlives it: the supervisor reads before it forks its workers.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuReading", "read_gpus"]


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU as NVML saw it; `index` is NVML's, which is CUDA's under `CUDA_DEVICE_ORDER=PCI_BUS_ID`."""

    index: int
    uuid: str
    name: str
    memory_used: int  # bytes, by every process on the GPU
    memory_total: int  # bytes
    utilization: float | None  # 0..1: the share of the last sample period a kernel ran; None where unsupported
    pids: tuple[int, ...]  # compute processes on it (as NVML numbers them: the host's pids, in a container)


def read_gpus() -> list[GpuReading] | None:
    """Every GPU NVML can read now, or None without NVML (no binding, no driver, NVML failing to start).
    A GPU NVML cannot read at all (lost, not this container's) is left out."""
    try:
        nvml: Any = importlib.import_module("pynvml")  # untyped: its Any stays in this module
    except ImportError:
        return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:  # NVMLError_LibraryNotFound, _DriverNotLoaded, _NoPermission, ...
        return None
    try:
        readings = [_read(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
        return [reading for reading in readings if reading is not None]
    except nvml.NVMLError:
        return None
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _read(nvml: Any, index: int) -> GpuReading | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        name = _text(nvml.nvmlDeviceGetName(handle))
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        used, total = int(memory.used), int(memory.total)
    except nvml.NVMLError:
        return None
    # Either may be unsupported (MIG mode, some boards, an older driver than the binding): the rest still counts.
    try:
        utilization: float | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu) / 100
    except nvml.NVMLError:
        utilization = None
    try:
        pids = tuple(int(process.pid) for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except nvml.NVMLError:
        pids = ()
    return GpuReading(index, uuid, name, used, total, utilization, pids)


def _text(value: object) -> str:
    """NVML's strings: `str` from recent bindings, `bytes` from older ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
