"""Finding GPUs with `nvidia-smi` when NVML is not there: a stand-in nvidia-smi, run as a real process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scorehost.devices.discovery import find_gpus

LISTING = "0, GPU-1111-aaaa, NVIDIA Test 80GB, 81559\n1, GPU-2222-bbbb, NVIDIA Test 80GB, [N/A]\n"


def fake_nvidia_smi(folder: Path, body: str) -> Path:
    """An executable `nvidia-smi` in `folder` running the shell `body`."""
    folder.mkdir(exist_ok=True)
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return folder


def on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_nvidia_smi_lists_the_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = f'[ "$1" = "--query-gpu=index,uuid,name,memory.total" ] || exit 9\nprintf "{LISTING}"\n'
    on_path(monkeypatch, fake_nvidia_smi(tmp_path / "bin", body))
    found = find_gpus()
    assert found.source == "nvidia-smi"
    assert [(gpu.index, gpu.uuid, gpu.name) for gpu in found.gpus] == [
        ("0", "GPU-1111-aaaa", "NVIDIA Test 80GB"),
        ("1", "GPU-2222-bbbb", "NVIDIA Test 80GB"),
    ]
    assert found.gpus[0].memory_total == 81559 * 1024 * 1024
    assert found.gpus[1].memory_total == 0
    assert found.gpus[0].describe() == "GPU 0: NVIDIA Test 80GB, 85.5 GB"


def test_a_failing_nvidia_smi_means_no_gpu_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = 'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\nexit 9\n'
    on_path(monkeypatch, fake_nvidia_smi(tmp_path / "bin", body))
    found = find_gpus()
    assert found.gpus == ()
    assert "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate" in found.source


def test_no_tool_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_gpus()
    assert found.gpus == ()
    assert found.source.endswith("no nvidia-smi on PATH")
