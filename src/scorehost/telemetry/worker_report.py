"""The workers' states, published for whoever supervises this server from outside (the control plane's local
backend, which shows each worker as one instance of a deployment).

With `SCOREHOST_WORKER_REPORT=PATH` in its environment, the supervisor replaces PATH whenever a worker starts,
becomes ready or dies:

```json
{"pid": 4120, "workers": [{"index": 1, "pid": 4133, "state": "ready", "restarts": 1,
                           "last_error": "was killed by SIGKILL", "started_at": 1765112000.5}]}
```

`pid` is the supervisor's, so a reader can tell a report of the process it watches from one left by an
earlier process. States are the backend's instance states: starting, ready, restarting. Written only on
those events, never per request; readers see the old file or the new one (a rename), never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["REPORT_VARIABLE", "WorkerReport", "read_worker_report"]

REPORT_VARIABLE = "SCOREHOST_WORKER_REPORT"


class WorkerReport:
    """The supervisor's record of its `count` workers; writes nothing without a path."""

    def __init__(self, path: str | None, count: int) -> None:
        self._path = Path(path) if path else None
        self._workers: list[dict[str, Any]] = [
            {"index": index, "pid": None, "state": "starting", "restarts": 0, "last_error": None, "started_at": None}
            for index in range(1, count + 1)
        ]

    @classmethod
    def from_environ(cls, count: int) -> WorkerReport:
        return cls(os.environ.get(REPORT_VARIABLE), count)

    def started(self, index: int, pid: int) -> None:
        self._change(index, pid=pid, state="starting", started_at=time.time())

    def ready(self, index: int) -> None:
        self._change(index, state="ready")

    def died(self, index: int, cause: str) -> None:
        """The worker is gone and will be replaced (after its back-off)."""
        worker = self._workers[index - 1]
        self._change(index, pid=None, state="restarting", restarts=worker["restarts"] + 1, last_error=cause)

    def _change(self, index: int, **changes: Any) -> None:
        self._workers[index - 1].update(changes)
        if self._path is None:
            return
        scratch = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        # A report that cannot be written (its folder removed under us) must never take the server down.
        with contextlib.suppress(OSError):
            scratch.write_text(json.dumps({"pid": os.getpid(), "workers": self._workers}))
            os.replace(scratch, self._path)


def read_worker_report(path: Path, pid: int) -> list[dict[str, Any]] | None:
    """The workers of the server whose supervisor is `pid`, as its report says; None when there is no report of
    that process (not written yet, left by an earlier process, or unreadable)."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("pid") != pid or not isinstance(report.get("workers"), list):
        return None
    return [worker for worker in report["workers"] if isinstance(worker, dict)]
