"""A deadline on reading each request's body, which granian's WSGI reader does not have.

granian hands a body to Python only while a Python thread waits in `wsgi.input.read()`, blocked in Rust with
no timeout (emmett-framework/granian#728, closed "wontfix"); reading in smaller pieces does not help, as a
piece waits for its bytes just the same. A worker has one such thread by default, so a client that sends its
headers and then a byte now and then would hold the whole worker. Only the connection can end that wait: when
a read passes its deadline, a watch thread answers the request 408 itself (granian takes an answer from any
thread), finds the connection the answer went out on (`sockets_of.py`) and shuts its reading side. The read
returns; the request's thread sees that its read was stopped and answers 408 too, which granian drops but the
access log, the metrics and the span record.

The request path pays two calls, a tuple and two attribute writes (`begin`, `end`): no clock, no system call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

from scorehost.http.sockets_of import shut_reading_after

__all__ = ["PROTOCOL_KEY", "BodyWatch", "Reading", "Slot", "timeout_message"]

logger = logging.getLogger("scorehost.worker")

# The environ key under which the granian front puts the request's protocol object (its `response_bytes`).
PROTOCOL_KEY = "scorehost.protocol"
_STATUS_LINE = len("HTTP/1.1 408 Request Timeout\r\n")

# What a thread is reading: the request's environ, the read's deadline and the headers its answer carries.
Reading = tuple[Mapping[str, Any], float, list[tuple[str, str]]]


def timeout_message(timeout: float) -> str:
    return (
        f"The request's body did not arrive within {timeout:g} s of its headers; send it at once, or raise "
        "--body-timeout."
    )


class Slot:
    """One Python thread's read in progress, if any; `stopped` is the read the watch ended."""

    __slots__ = ("reading", "stopped")

    def __init__(self) -> None:
        self.reading: Reading | None = None
        self.stopped: Reading | None = None

    def end(self) -> bool:
        """Note that the read is over; True if the watch stopped it (the request is then answered 408)."""
        reading = self.reading
        self.reading = None  # before looking at `stopped`: the watch sets `stopped` before it looks at `reading`
        return reading is not None and self.stopped is reading


class BodyWatch:
    """Body reads of one worker's threads, each ended `timeout` seconds after its request arrived."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._local = threading.local()
        self._slots: list[Slot] = []
        self._lock = threading.Lock()
        self._tick = min(1.0, max(0.02, timeout / 20))
        self._thread: threading.Thread | None = None

    def begin(self, environ: Mapping[str, Any], started: float, headers: list[tuple[str, str]]) -> Slot:
        """Note that this thread starts reading the body of a request that arrived at `started` (monotonic);
        call the slot's `end()` once the read is over."""
        try:
            slot: Slot = self._local.slot
        except AttributeError:
            slot = self._new_slot()
        slot.reading = (environ, started + self.timeout, headers)
        return slot

    def _new_slot(self) -> Slot:
        slot = self._local.slot = Slot()
        with self._lock:
            self._slots.append(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="scorehost-body-watch", daemon=True)
                self._thread.start()
        return slot

    def _watch(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            for slot in list(self._slots):
                reading = slot.reading
                if reading is not None and now > reading[1] and slot.stopped is not reading:
                    try:
                        self._stop(slot, reading)
                    except Exception:  # the watch must outlive any one request
                        logger.exception("could not stop a body read past its deadline")

    def _stop(self, slot: Slot, reading: Reading) -> None:
        slot.stopped = reading
        if slot.reading is not reading:  # the read ended meanwhile: its thread carries on (or saw `stopped`)
            return
        environ, _, headers = reading
        protocol = environ.get(PROTOCOL_KEY)
        if protocol is None:  # not served by the granian front: nothing to answer on
            return
        body = orjson.dumps({"message": timeout_message(self.timeout)})
        answer = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
            *headers,
            ("x-ms-run-function-failed", "False"),
        ]
        size = _STATUS_LINE + sum(len(name) + len(value) + 4 for name, value in answer) + 2 + len(body)
        found = shut_reading_after(
            lambda: protocol.response_bytes(408, answer, body),
            int(environ.get("SERVER_PORT") or 0),
            environ.get("REMOTE_ADDR", ""),
            size,
        )
        logger.warning(
            "the body did not arrive within %g s (--body-timeout): answered 408 and %s",
            self.timeout,
            "closed the connection" if found else "found no connection to close (a thread waits for the client)",
            extra={"request_id": next((value for name, value in headers if name == "x-ms-request-id"), "")},
        )
