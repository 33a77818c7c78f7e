"""Which GPU(s) each worker sees: `--devices auto|none|0,1,...` and `--workers-per-device N`.

Each worker gets its own `CUDA_VISIBLE_DEVICES`, so a framework inside it sees only its share and calls it
device 0. With at least as many workers as devices they go round the devices one each (4 workers on 0,1: 0, 1,
0, 1); with fewer, each takes a contiguous group (2 workers on 0-3: 0,1 and 2,3). On a machine without a GPU,
`auto` changes nothing: the workers run on the CPU as they always did.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from scorehost.devices.discovery import GpuSearch, find_gpus

__all__ = ["AUTO", "NONE", "Placement", "PlacementError", "parse_devices", "plan_placement"]

AUTO, NONE = "auto", "none"
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:/._-]{0,127}")  # an index, GPU-<uuid>, MIG-<uuid> or MIG-GPU-x/1/0
_HIDDEN = ("", "-1", "none", "NoDevFiles", "void")  # CUDA_VISIBLE_DEVICES values that hide every GPU


class PlacementError(ValueError):
    """Devices and workers that do not fit together; the message names the fix."""


def parse_devices(value: object) -> str:
    """`auto`, `none`, or a comma-separated list of distinct device ids (`0,1`, `GPU-8f2c...`), normalised."""
    text = str(value if value is not None else AUTO).strip()
    if text.lower() in (AUTO, NONE):
        return text.lower()
    ids = [part.strip() for part in text.split(",")]
    bad = [part for part in ids if not _DEVICE_ID.fullmatch(part)]
    if bad or not ids:
        raise ValueError(
            f"{text!r} is not a device list: give auto, none, or GPU indices or UUIDs separated by commas (0,1)"
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"{text!r} names a device twice; give each GPU once (use --workers-per-device to share)")
    return ",".join(ids)


@dataclass(frozen=True, slots=True)
class Placement:
    """The workers' devices: `per_worker[i]` is what worker i+1 sees; `active` False leaves their environment
    as it is (no GPU, nothing asked)."""

    workers: int
    per_worker: tuple[tuple[str, ...], ...] = ()
    active: bool = False
    lines: tuple[str, ...] = field(default=())  # what the start-up log says about devices, once

    def devices_of(self, worker: int) -> tuple[str, ...]:
        """The devices of worker `worker` (1-based; a reload's generation numbers its workers the same way)."""
        return self.per_worker[(worker - 1) % len(self.per_worker)] if self.per_worker else ()

    def environment(self, worker: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
        """The variables worker `worker` needs set before it loads anything (nothing when inactive)."""
        if not self.active:
            return {}
        variables = {
            "CUDA_VISIBLE_DEVICES": ",".join(self.devices_of(worker)),
            "SCOREHOST_WORKER_INDEX": str(worker),
        }
        if "CUDA_DEVICE_ORDER" not in environ:  # NVML's and nvidia-smi's numbering, not CUDA's "fastest first"
            variables["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return variables


def plan_placement(
    devices: str,
    workers: int,
    workers_per_device: int | None = None,
    *,
    workers_given: bool = False,
    environ: Mapping[str, str] = os.environ,
    search: Callable[[], GpuSearch] = find_gpus,
) -> Placement:
    """Spread `workers` over `devices` (`parse_devices`' form); PlacementError when they cannot fit.
    With `workers_per_device`, the worker count is that many per device (`workers_given`: --workers was also
    given, and must agree)."""
    lines: list[str] = []
    if devices == NONE:
        if workers_per_device:
            raise PlacementError("--workers-per-device needs GPUs, and --devices none hides them: use --workers")
        lines.append("devices: none (--devices none): every worker runs on the CPU")
        return Placement(workers, ((),), active=True, lines=tuple(lines))
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if devices == AUTO and visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        if not ids or ids[0] in _HIDDEN:
            return _on_cpu(workers, workers_per_device, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU")
        lines.append(f"devices: {', '.join(ids)} (from CUDA_VISIBLE_DEVICES)")
    elif devices == AUTO:
        found = search()
        if not found.gpus:
            return _on_cpu(workers, workers_per_device, f"no GPU found ({found.source})")
        ids = [gpu.index for gpu in found.gpus]
        described = "; ".join(gpu.describe() for gpu in found.gpus)
        lines.append(f"devices: {len(ids)} GPU(s) found by {found.source}: {described}")
    else:
        ids = devices.split(",")
        found = search()
        known = {gpu.index for gpu in found.gpus} | {gpu.uuid for gpu in found.gpus}
        unknown = [device for device in ids if known and device not in known and not device.startswith("MIG-")]
        if unknown:
            listed = ", ".join(f"{gpu.index} ({gpu.uuid})" for gpu in found.gpus)
            raise PlacementError(
                f"--devices {devices}: no GPU {', '.join(unknown)} on this machine; {found.source} lists {listed}"
            )
        seen = "" if known else f"; not checked: {found.source}"
        lines.append(f"devices: {', '.join(ids)} (--devices{seen})")
    if workers_per_device:
        wanted = workers_per_device * len(ids)
        if workers_given and workers != wanted:
            raise PlacementError(
                f"--workers {workers} and --workers-per-device {workers_per_device} disagree: {len(ids)} device(s) "
                f"x {workers_per_device} = {wanted} workers. Give one of the two."
            )
        workers = wanted
    per_worker = spread(ids, workers)
    lines.append("devices: " + ", ".join(f"worker {i}: {_named(d)}" for i, d in enumerate(per_worker, start=1)))
    return Placement(workers, per_worker, active=True, lines=tuple(lines))


def spread(devices: Sequence[str], workers: int) -> tuple[tuple[str, ...], ...]:
    """Round the devices one per worker when there are enough workers, else contiguous groups as even as can be."""
    if workers >= len(devices):
        return tuple((devices[i % len(devices)],) for i in range(workers))
    base, extra = divmod(len(devices), workers)
    groups, start = [], 0
    for worker in range(workers):
        size = base + (1 if worker < extra else 0)
        groups.append(tuple(devices[start : start + size]))
        start += size
    return tuple(groups)


def _on_cpu(workers: int, workers_per_device: int | None, why: str) -> Placement:
    if workers_per_device:
        raise PlacementError(f"--workers-per-device needs GPUs, and {why}: use --workers, or check the driver")
    return Placement(workers, lines=(f"devices: {why}; the workers run on the CPU",))


def _named(devices: tuple[str, ...]) -> str:
    return f"GPU {devices[0]}" if len(devices) == 1 else f"GPUs {','.join(devices)}"
