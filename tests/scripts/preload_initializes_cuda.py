"""init() leaves the process as PyTorch does once a model moved to the GPU: torch.cuda.is_initialized() is True.
A stand-in for torch, so the check that refuses to fork after it can be tested on a machine without a GPU."""

import sys
import types


def init():
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_initialized=lambda: True)
    sys.modules["torch"] = torch


def run(data):
    return data
