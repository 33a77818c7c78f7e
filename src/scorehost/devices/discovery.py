"""Finding this machine's NVIDIA GPUs without importing a framework: NVML (the `gpu` extra), else `nvidia-smi`.

Neither initializes CUDA, so the supervisor may look before it forks its workers. Both number the GPUs in
PCI bus order, the order CUDA uses once `CUDA_DEVICE_ORDER=PCI_BUS_ID` is set (placement.py sets it).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Gpu", "GpuSearch", "find_gpus"]

_QUERY = "--query-gpu=index,uuid,name,memory.total"
_SMI_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU as NVML or nvidia-smi numbers it."""

    index: str
    uuid: str
    name: str
    memory_total: int  # bytes

    def describe(self) -> str:
        from scorehost.config import format_size

        return f"GPU {self.index}: {self.name}, {format_size(self.memory_total)}"


@dataclass(frozen=True, slots=True)
class GpuSearch:
    """What a search found, and how: `source` names the tool ("NVML", "nvidia-smi"), or says why none answered."""

    gpus: tuple[Gpu, ...]
    source: str


def find_gpus() -> GpuSearch:
    """The GPUs NVML sees, or failing that those `nvidia-smi` lists; none (and why) on a machine without."""
    from scorehost.devices.nvml import read_gpus

    readings = read_gpus()
    if readings:
        gpus = tuple(Gpu(str(r.index), r.uuid, r.name, r.memory_total) for r in readings)
        return GpuSearch(gpus, "NVML")
    nvml = "NVML found no GPU" if readings is not None else "NVML unavailable"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return GpuSearch((), f"{nvml}, no nvidia-smi on PATH")
    try:
        done = subprocess.run(
            [smi, _QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return GpuSearch((), f"{nvml}, nvidia-smi failed ({type(error).__name__})")
    if done.returncode != 0:
        said = (done.stdout.strip() or done.stderr.strip()).splitlines()
        return GpuSearch((), f"{nvml}, nvidia-smi failed: {said[0] if said else f'exit {done.returncode}'}")
    gpus = tuple(gpu for line in done.stdout.splitlines() if (gpu := _parse_smi_line(line)) is not None)
    return GpuSearch(gpus, "nvidia-smi" if gpus else f"{nvml}, nvidia-smi lists no GPU")


def _parse_smi_line(line: str) -> Gpu | None:
    """`0, GPU-5c1e..., NVIDIA H100 80GB HBM3, 81559` (memory in MiB), or None for a line that is not one."""
    parts = [part.strip() for part in line.split(",")]
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    index, uuid, name, memory = parts
    try:
        mebibytes = int(float(memory))
    except ValueError:
        mebibytes = 0  # "[N/A]" on some boards: the GPU is still there
    return Gpu(index, uuid, name, mebibytes * 1024 * 1024)
