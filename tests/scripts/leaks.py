"""Each run() keeps the number of MiB it is given, and never lets them go (a leak); returns its pid and the total."""

import json
import os

_kept = []


def init():
    pass


def run(data):
    mib = int(json.loads(data))
    _kept.append(bytearray(b"x") * (mib * 1024 * 1024))  # written, so resident: not a lazily mapped zero page
    return {"pid": os.getpid(), "kept_mib": sum(len(chunk) for chunk in _kept) // (1024 * 1024)}
