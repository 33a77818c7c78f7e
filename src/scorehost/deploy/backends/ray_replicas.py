"""Each replica of a Ray generation as one instance of `deployments show`: named by Serve's replica id, which it
keeps from start to stop, with the restarts of the generation counted across Serve's replacements.

Serve lists a deployment's live replicas, each with its id, state and start time, in the details behind
`serve.status()` (`get_serve_details()`, one call to its controller), but keeps no count of replicas that died:
a replica killed, crashed or failed its health checks is replaced by a new one with a new id. So the backend
keeps a `ReplicaBook` per generation and counts, at each look, the replicas gone beyond those Serve meant to
stop (the ones past its target: autoscaling, a rolling update's resizing): each such one died, as a local
instance does before its restart. The next new replica takes over its restarts, plus one, and says whom it
replaced. Restarts not on a listed replica (of one that died and is not replaced yet, or of one scaled down)
are shown on the oldest replica, so the generation's total never drops.

What a book cannot see: replicas that came and went between two looks, or a scale down and up between two
looks (counted as a restart). It lives in the control plane's memory: a restarted control plane counts from 0.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Replica", "ReplicaBook", "ReplicaBooks", "replicas_of"]

_LEAVING = frozenset({"STOPPING"})  # listed until gone, but no longer one of the replicas Serve counts
REPLACED = "replaces replica {old}, which stopped unexpectedly (killed, crashed or failed its health checks)"


@dataclass(frozen=True)
class Replica:
    """One replica as Serve lists it: its id, state name (RUNNING, STARTING, ...) and start time (Unix)."""

    id: str
    state: str
    started_at: float | None = None


@dataclass(frozen=True)
class Counted:
    """A replica's restarts (those of the replicas it replaced, each one more) and why it was last restarted."""

    restarts: int = 0
    last_error: str | None = None


def replicas_of(deployment: Mapping[str, Any]) -> list[Replica]:
    """The replicas in one deployment's entry of Serve's details (`replicas`: dicts with `replica_id`, `state`
    as an enum or its name, `start_time_s`), in the order they started."""
    found = []
    for entry in deployment.get("replicas") or ():
        state = entry.get("state")
        name = str(getattr(state, "value", state)).rsplit(".", 1)[-1]
        started = entry.get("start_time_s")
        found.append(Replica(str(entry.get("replica_id")), name, float(started) if started else None))
    return sorted(found, key=lambda replica: (replica.started_at or 0.0, replica.id))


class ReplicaBook:
    """The restarts of one generation's replicas, from successive looks at them (`look`)."""

    def __init__(self) -> None:
        self._counted: dict[str, Counted] = {}  # the replicas Serve counted at the last look
        self._waiting: list[Counted] = []  # what the replicas that died hand over to their replacements, to come
        self._left = 0  # restarts of replicas that went without dying (scaled down)

    def look(self, replicas: Sequence[Replica], target: int) -> dict[str, Counted]:
        """Each listed replica's count, from `replicas` now and Serve's `target` number of them now."""
        counted = [replica for replica in replicas if replica.state not in _LEAVING]
        live = {replica.id for replica in counted}
        gone = sorted(
            ((self._counted[name], name) for name in self._counted if name not in live),
            key=lambda item: -item[0].restarts,
        )
        # Replicas beyond the target at the last look may go: scaled down (now, or by a change seen before).
        died = max(0, len(gone) - max(0, len(self._counted) - target))
        self._waiting += [Counted(before.restarts + 1, REPLACED.format(old=name)) for before, name in gone[:died]]
        self._left += sum(before.restarts for before, _ in gone[died:])
        book = {name: self._counted[name] for name in self._counted if name in live}
        for replica in counted:
            if replica.id not in book:  # new: in place of one that died, if one did
                book[replica.id] = self._waiting.pop(0) if self._waiting else Counted()
        self._counted = book
        shown = {replica.id: book.get(replica.id, Counted()) for replica in replicas}
        unshown = self._left + sum(waiting.restarts for waiting in self._waiting)
        oldest = counted[0].id if counted else None
        if unshown and oldest is not None:
            mine = shown[oldest]
            shown[oldest] = Counted(mine.restarts + unshown, mine.last_error)
        return shown

    @property
    def restarts(self) -> int:
        """The generation's restarts so far."""
        return self._left + sum(c.restarts for c in self._waiting) + sum(c.restarts for c in self._counted.values())


class ReplicaBooks:
    """One `ReplicaBook` per generation (by Serve application name), the most recent `keep` of them, thread-safe."""

    def __init__(self, keep: int = 256) -> None:
        self._books: OrderedDict[str, ReplicaBook] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def look(self, app: str, replicas: Sequence[Replica], target: int) -> dict[str, Counted]:
        with self._lock:
            book = self._books.get(app)
            if book is None:
                book = self._books[app] = ReplicaBook()
                while len(self._books) > self._keep:
                    self._books.popitem(last=False)
            return book.look(replicas, target)

    def forget(self, app: str) -> None:
        with self._lock:
            self._books.pop(app, None)
