"""The stand-in NVML (tests/scripts/fake_nvml/pynvml.py) in this process, for reading GPUs on a machine without."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import pytest
from conftest import SCRIPTS

FAKE_NVML = SCRIPTS / "fake_nvml"  # on a server's PYTHONPATH, its `pynvml`
GIB = 1024**3


def fake_nvml(monkeypatch: pytest.MonkeyPatch, gpus: list[dict[str, Any]]) -> ModuleType:
    """The stand-in as the `pynvml` that read_gpus() imports, listing `gpus` (fake_gpu() makes one)."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_NVML / "pynvml.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("FAKE_NVML_GPUS", json.dumps(gpus))
    return module


def fake_gpu(
    uuid: str, name: str = "NVIDIA Test", used: int = GIB, utilization: int | None = 50, pids: list[int] | None = None
) -> dict[str, Any]:
    """One GPU of 80 GiB as the stand-in lists it (`utilization` a percent; None: not supported)."""
    gpu = {"uuid": uuid, "name": name, "used": used, "total": 80 * GIB, "utilization": utilization}
    return {**gpu, "pids": [] if pids is None else pids}
