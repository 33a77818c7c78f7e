"""Writes what each process sees of the GPUs, from init() and from init_worker(), one file per process and step
in $DEVICES_REPORT_DIR; run() answers its worker's pid and devices."""

import json
import os
from pathlib import Path

_SEEN = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "SCOREHOST_WORKER_INDEX")


def _note(step):
    folder = Path(os.environ["DEVICES_REPORT_DIR"])
    seen = {name: os.environ.get(name) for name in _SEEN}
    partial = folder / f".{step}-{os.getpid()}"
    partial.write_text(json.dumps({"step": step, "pid": os.getpid(), **seen}))
    partial.rename(folder / f"{step}-{os.getpid()}.json")  # whole, or not there yet


def init():
    _note("init")


def init_worker():
    _note("init_worker")


def run(data):
    return {"pid": os.getpid(), "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
