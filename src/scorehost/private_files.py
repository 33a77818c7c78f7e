"""Files only their owner may read, replaced atomically: the one writer for every workspace file that holds a
secret (the routing table's keys, the control plane's token, a deployment's environment, process records)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data`, mode 0600: readers see the old file or the new one, never half of either, and
    after a crash or a power loss the new one is whole or absent (written, synced, then renamed)."""
    target = Path(path)
    fd, scratch = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise
