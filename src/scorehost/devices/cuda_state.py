"""Whether this process has a GPU driver context already, which a forked child cannot use.

A process that initialized CUDA (or ROCm) and then forks leaves its children with a driver state they cannot
use: PyTorch says "Cannot re-initialize CUDA in forked subprocess", other frameworks hang or crash. `--preload`
forks after `init()`, so the supervisor asks this before forking. Two signs, neither of which imports a
framework: PyTorch's own flag when the script imported torch, and the driver's device files held open
(`/dev/nvidia-uvm`, opened by any CUDA context whatever the framework; `/dev/kfd` for ROCm). NVML alone, as
device discovery uses it, opens neither.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["gpu_context_sign", "preload_refusal"]

_CONTEXT_FILES = ("/dev/nvidia-uvm", "/dev/kfd")


def gpu_context_sign(fd_dir: Path = Path("/proc/self/fd")) -> str | None:
    """What shows this process holds a GPU context (for the message), or None when nothing does."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    is_initialized = getattr(cuda, "is_initialized", None)
    if callable(is_initialized):
        try:
            if is_initialized():
                return "torch.cuda.is_initialized() is True"
        except Exception:  # a torch too broken to answer is not evidence either way
            pass
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return None  # not Linux: no /proc to look in
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue  # closed since the listing
        if target in _CONTEXT_FILES:
            return f"this process holds {target} open (a GPU driver context)"
    return None


def preload_refusal(sign: str) -> str:
    """Why `--preload` cannot go on after `init()` made a GPU context, and the two ways out."""
    return (
        f"init() initialized the GPU while preloading ({sign}): workers forked from this process could not use it "
        '(PyTorch: "Cannot re-initialize CUDA in forked subprocess"). Either serve without --preload, so each '
        "worker runs init() itself on its own GPU, or keep --preload and load the model on the CPU in init(), then "
        "move it to the GPU in init_worker(), which each worker runs after the fork (docs/gpu.md)."
    )
