"""A stand-in for nvidia-ml-py's `pynvml`, for machines without a GPU: on PYTHONPATH (or put in sys.modules), it
reports the GPUs listed as JSON in $FAKE_NVML_GPUS: [{"uuid", "name", "used", "total", "utilization" (a percent,
or null: not supported), "pids" (or null: not supported), "lost" (true: the GPU cannot be read)}, ...].
$FAKE_NVML_INIT_ERROR set: nvmlInit fails with that NVML error code (12: the library is not found)."""

import json
import os
from types import SimpleNamespace

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_GPU_IS_LOST = 15
sessions = 0  # nvmlInit calls not yet shut down, in this process


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own name
    def __init__(self):
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


def _gpus():
    return json.loads(os.environ.get("FAKE_NVML_GPUS", "[]"))


def _gpu(handle):
    if sessions <= 0:
        raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED
    gpu = _gpus()[handle]
    if gpu.get("lost"):
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)
    return gpu


def nvmlInit():
    global sessions
    code = os.environ.get("FAKE_NVML_INIT_ERROR")
    if code:
        raise NVMLError(int(code))
    sessions += 1


def nvmlShutdown():
    global sessions
    if sessions <= 0:
        raise NVMLError(1)
    sessions -= 1


def nvmlDeviceGetCount():
    if sessions <= 0:
        raise NVMLError(1)
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index):
    return index


def nvmlDeviceGetUUID(handle):
    return _gpu(handle)["uuid"]


def nvmlDeviceGetName(handle):
    return _gpu(handle)["name"].encode()  # bytes, as older bindings answer


def nvmlDeviceGetMemoryInfo(handle):
    gpu = _gpu(handle)
    return SimpleNamespace(used=gpu["used"], total=gpu["total"], free=gpu["total"] - gpu["used"])


def nvmlDeviceGetUtilizationRates(handle):
    percent = _gpu(handle)["utilization"]
    if percent is None:
        raise NVMLError_NotSupported()
    return SimpleNamespace(gpu=percent, memory=0)


def nvmlDeviceGetComputeRunningProcesses(handle):
    pids = _gpu(handle).get("pids", [])
    if pids is None:
        raise NVMLError_NotSupported()
    return [SimpleNamespace(pid=pid, usedGpuMemory=0) for pid in pids]
