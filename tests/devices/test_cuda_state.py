"""The sign that init() left a GPU context behind, which no forked worker could use."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from scorehost.devices.cuda_state import gpu_context_sign, preload_refusal


def fds(tmp_path: Path, *targets: str) -> Path:
    """A stand-in for /proc/self/fd: one link per open file."""
    folder = tmp_path / f"fd{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    for number, target in enumerate(targets):
        os.symlink(target, folder / str(number))
    return folder


def test_nothing_open_is_no_sign(tmp_path: Path) -> None:
    assert gpu_context_sign(fds(tmp_path, "/dev/null", "/dev/nvidiactl", "socket:[123]")) is None
    assert gpu_context_sign() is None  # this very process (no GPU here)


@pytest.mark.parametrize("device", ["/dev/nvidia-uvm", "/dev/kfd"])
def test_a_driver_context_file_held_open_is_one(tmp_path: Path, device: str) -> None:
    assert (
        gpu_context_sign(fds(tmp_path, "/dev/null", device))
        == f"this process holds {device} open (a GPU driver context)"
    )


def test_torch_saying_cuda_is_initialized_is_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_initialized=lambda: True)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert gpu_context_sign(fds(tmp_path)) == "torch.cuda.is_initialized() is True"
    torch.cuda = types.SimpleNamespace(is_initialized=lambda: False)  # type: ignore[attr-defined]
    assert gpu_context_sign(fds(tmp_path)) is None


def test_the_refusal_names_both_fixes() -> None:
    message = preload_refusal("torch.cuda.is_initialized() is True")
    assert "serve without --preload" in message
    assert "init_worker()" in message
    assert "docs/gpu.md" in message
