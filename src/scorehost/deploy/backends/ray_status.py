"""Reading Ray Serve's status of an application: its states' names, and replicas left waiting for room."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["Unplaced", "state_name"]

_UNSCHEDULABLE = "to be scheduled"  # Serve's status message for replicas no node has resources for


def state_name(state: Any) -> str:
    """A Serve status enum's name (`ApplicationStatus.RUNNING` -> "RUNNING"), whether it arrives as enum or str."""
    return str(getattr(state, "value", state)).rsplit(".", 1)[-1]


class Unplaced:
    """How long an application's replicas have waited for room no node has free. Ray leaves them pending
    silently; Serve says so only in its status message (after RAY_SERVE_SLOW_STARTUP_WARNING_S)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._since: float | None = None

    def past_grace(self, message: str) -> bool:
        """Whether `message`, Serve's latest, says they still wait, and have waited longer than the grace."""
        if _UNSCHEDULABLE not in message:
            self._since = None
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
        return now - self._since > self.grace
