"""The GPU series of `/metrics`: each GPU's memory and utilization as NVML reads it at the scrape, and which
worker holds it.

A server that places its workers on GPUs starts each with `SCOREHOST_WORKER_INDEX` and its own
`CUDA_VISIBLE_DEVICES` (devices/placement.py). Each worker records those devices in its metric files when it
starts (`record_worker_devices`), as a live gauge that goes with the worker when it dies (`mark_worker_dead`).
A scrape turns the records of the live workers into GPU series (`GpuCollector`): NVML is read only when some
worker holds a GPU, and only the GPUs the server's workers hold are exported, named by NVML index whether the
variable named them by index or by UUID. Without NVML, or with no worker on a GPU, there is no GPU series
at all, and the records themselves are never exported.

prometheus-client is imported inside the functions: it picks its storage when first imported, which must
happen after `prepare_multiprocess()` (telemetry/prometheus.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from scorehost.devices.nvml import GpuReading, read_gpus
from scorehost.telemetry.prometheus import exposition

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

__all__ = ["DEVICES_ENV", "WORKER_ENV", "GpuCollector", "device_ids", "exposition_with_gpus", "record_worker_devices"]

WORKER_ENV = "SCOREHOST_WORKER_INDEX"
DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
_RECORD = "scorehost_gpu_worker_device"  # the workers' own records: turned into scorehost_gpu_worker_info
_GPU_LABELS = ("gpu", "uuid", "name")

Reader = Callable[[], "list[GpuReading] | None"]


def device_ids(value: str) -> list[str]:
    """The entries of a `CUDA_VISIBLE_DEVICES` value as CUDA reads them: up to the first empty or negative one
    (`-1` and `""` hide every GPU). Each is an index (`0`), or a UUID or its prefix (`GPU-8f2c...`)."""
    ids: list[str] = []
    for part in value.split(","):
        entry = part.strip()
        if not entry or entry.startswith("-"):
            break
        ids.append(entry)
    return ids


def record_worker_devices(environ: Mapping[str, str], registry: CollectorRegistry | None) -> None:
    """Record the GPUs this process holds, when it is a worker placed on GPUs (`registry` None: in the
    multiprocess files). Nothing for a process without `SCOREHOST_WORKER_INDEX`, or without a device."""
    worker = environ.get(WORKER_ENV, "").strip()
    devices = device_ids(environ.get(DEVICES_ENV, ""))
    if not worker or not devices:
        return
    from prometheus_client import Gauge

    held = Gauge(
        _RECORD,
        "A device in a worker's CUDA_VISIBLE_DEVICES (scorehost's own; exported as scorehost_gpu_worker_info).",
        ["device", "worker"],
        multiprocess_mode="livemax",  # without a pid label, and gone with its worker
        registry=registry,
    )
    for device in devices:
        held.labels(device, worker).set(1)


class GpuCollector:
    """The metrics of `source`, with the workers' device records replaced by the GPU series they call for."""

    def __init__(self, source: Collector, reader: Reader = read_gpus) -> None:
        self._source = source
        self._reader = reader

    def collect(self) -> Iterator[Metric]:
        held: set[tuple[str, str]] = set()  # (device id, worker)
        for family in self._source.collect():
            if family.name == _RECORD:
                held.update((s.labels["device"], s.labels["worker"]) for s in family.samples if s.value)
            else:
                yield family
        if held:
            readings = self._reader()
            if readings:
                yield from gpu_families(readings, held)


def gpu_families(readings: Sequence[GpuReading], held: Iterable[tuple[str, str]]) -> list[Metric]:
    """The GPU series for the GPUs in `held` ((device id, worker) pairs) that NVML read."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    holders: dict[int, set[str]] = {}
    for device, worker in held:
        gpu = _find(readings, device)
        if gpu is not None:
            holders.setdefault(gpu.index, set()).add(worker)
    used = GaugeMetricFamily(
        "scorehost_gpu_memory_used_bytes",
        "GPU memory in use, by every process on the GPU (NVML).",
        labels=_GPU_LABELS,
    )
    total = GaugeMetricFamily("scorehost_gpu_memory_total_bytes", "GPU memory in all (NVML).", labels=_GPU_LABELS)
    utilization = GaugeMetricFamily(
        "scorehost_gpu_utilization_ratio",
        "Share of the last sample period in which a kernel ran on the GPU, 0 to 1 (NVML).",
        labels=_GPU_LABELS,
    )
    info = GaugeMetricFamily(
        "scorehost_gpu_worker_info",
        "1 for each GPU a live worker of this server holds (in its CUDA_VISIBLE_DEVICES), by worker number.",
        labels=(*_GPU_LABELS, "worker"),
    )
    for gpu in readings:
        if gpu.index not in holders:
            continue
        labels = [str(gpu.index), gpu.uuid, gpu.name]
        used.add_metric(labels, gpu.memory_used)
        total.add_metric(labels, gpu.memory_total)
        if gpu.utilization is not None:
            utilization.add_metric(labels, gpu.utilization)
        for worker in sorted(holders[gpu.index], key=_number):
            info.add_metric([*labels, worker], 1)
    return [family for family in (used, total, utilization, info) if family.samples]


def exposition_with_gpus(registry: CollectorRegistry, multiprocess_mode: bool, reader: Reader = read_gpus) -> bytes:
    """telemetry.prometheus.exposition's text, with the GPU series: `registry`'s metrics, or with
    `multiprocess_mode` those every process of the server wrote."""
    return exposition(registry, multiprocess_mode, wrap=lambda source: GpuCollector(source, reader))


def _find(readings: Sequence[GpuReading], device: str) -> GpuReading | None:
    """The GPU a `CUDA_VISIBLE_DEVICES` entry names: an NVML index, or a UUID or a prefix of one that CUDA
    would accept (it names one GPU only). A MIG instance or an unknown id names none here."""
    if device.isdigit():
        return next((gpu for gpu in readings if gpu.index == int(device)), None)
    matches = [gpu for gpu in readings if gpu.uuid.startswith(device)]
    return matches[0] if len(matches) == 1 else None


def _number(worker: str) -> tuple[int, str]:
    return (int(worker), worker) if worker.isdigit() else (0, worker)
