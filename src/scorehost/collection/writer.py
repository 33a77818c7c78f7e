"""`CollectionWriter`: rows offered on the request path, written to JSON-lines files by one daemon thread.

`offer` only appends to a deque (no lock, no signal, no serialization), so a slow or hung disk costs requests
nothing: the queue fills and rows are dropped and counted. The writer thread wakes every 0.2 s, encodes what is
queued, and appends each partition's rows with one `os.write`; a write that fails part-way is cut back to its last
whole row (the rest are dropped and counted), so a file never holds half a row. Files are fsynced at most once a
second; retention runs at start and every minute.

Counting is lock-free: the writer thread alone updates what it counts; `queue_full` drops are counted on the
offering threads, where two threads offering at the same instant may (rarely) lose an increment of that count or
of the queued bytes, and where the queue's bounds may be passed by one row per thread offering at that instant.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from scorehost.collection.files import AppendFiles
from scorehost.collection.layout import file_name, partition
from scorehost.collection.retention import prune
from scorehost.collection.rows import EncodedRow, PayloadRow, Row, encode_row, row_second
from scorehost.collection.settings import CollectionSettings

__all__ = [
    "CLOSED",
    "DISK_FULL",
    "ENCODE_ERROR",
    "QUEUE_FULL",
    "WRITE_ERROR",
    "CollectionWriter",
    "WriterStats",
]

logger = logging.getLogger("scorehost.collection")

QUEUE_FULL = "queue_full"  # the queue was at queue_rows or queue_bytes: the disk is slower than the traffic
DISK_FULL = "disk_full"  # ENOSPC, EDQUOT, EFBIG (past `ulimit -f`)
WRITE_ERROR = "write_error"  # any other failure to create or write the file
ENCODE_ERROR = "encode_error"  # the collected object cannot be written as JSON
CLOSED = "closed"  # offered after close()

OBJECT_ROW_BYTES = 1024  # what an object row counts against queue_bytes: its size is unknown until encoded
_TICK = 0.2
_RETAIN_EVERY = 60.0
_WARN_EVERY = 10.0
_IDLE_CLOSE = 60.0
_BATCH_BYTES = 32 * 1024 * 1024  # encoded per round, so a backlog of big rows is written in bounded pieces
_WRITE_BYTES = 8 * 1024 * 1024  # one write's most; a larger group is cut at row boundaries
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FIXES = {
    QUEUE_FULL: "the disk is slower than the traffic: lower sampling_rate, or raise queue_rows / queue_bytes",
    DISK_FULL: "free space on that disk, or lower retention (max_bytes, max_age_seconds)",
    WRITE_ERROR: "check that the folder is writable and its disk healthy",
    ENCODE_ERROR: "collect DataFrames, dicts, lists, numpy arrays or text, under names of letters, digits, _ . -",
}

WrittenCallback = Callable[[str, int], None]
DroppedCallback = Callable[[str, str, int], None]


@dataclass(frozen=True)
class WriterStats:
    """Rows written per collection, rows dropped per (collection, reason), and rows queued now."""

    written: Mapping[str, int]
    dropped: Mapping[tuple[str, str], int]
    queued: int


def _cost(item: Row) -> int:
    """What a queued row counts against queue_bytes; offer and drain must agree, or the count drifts."""
    if isinstance(item, EncodedRow):
        return len(item.line)
    return len(item.body) if isinstance(item, PayloadRow) else OBJECT_ROW_BYTES


class CollectionWriter:
    """Appends offered rows to `<directory>/<collection>/<partition>/<host>-<pid>.jsonl` from a daemon thread.

    `on_written(collection, n)` and `on_dropped(collection, reason, n)` run on the writer thread, except for
    reasons `queue_full` and `closed`, which run on the thread that offered the row. Make it in the process that
    offers, after any fork: its thread and its file name (`<host>-<pid>`) belong to that process.
    """

    def __init__(
        self,
        settings: CollectionSettings,
        *,
        on_written: WrittenCallback | None = None,
        on_dropped: DroppedCallback | None = None,
        hostname: str | None = None,
    ) -> None:
        self.settings = settings
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._file_name = file_name(hostname)
        self._queue: deque[Row] = deque()
        self._sync_every = settings.sync_seconds
        self._max_rows = settings.queue_rows
        self._max_bytes = settings.queue_bytes
        self._body_limit = settings.max_payload_bytes
        self._bytes_in = 0  # added by offering threads only
        self._bytes_out = 0  # added by the writer thread only
        self._offer_dropped: dict[tuple[str, str], int] = {}
        self._thread_dropped: dict[tuple[str, str], int] = {}
        self._written: dict[str, int] = {}
        self._files = AppendFiles()
        self._partitions: dict[tuple[int, str], str] = {}
        self._last_minute, self._last_partition = -1, ""
        self._pending: dict[str, tuple[int, str]] = {}  # reason -> rows dropped since its last warning, detail
        self._warned: dict[str, float] = {}
        self._queue_full_seen = 0
        self._closed = False
        self._stopping = False
        self._wake = threading.Event()
        self._flushes: deque[threading.Event] = deque()
        self._thread = threading.Thread(target=self._run, name="scorehost-collection", daemon=True)
        self._thread.start()

    # The request path.

    def offer(self, item: Row) -> bool:
        """Queue a row for writing; False when it was dropped (queue full, or closed). Never blocks or raises."""
        try:
            if type(item) is PayloadRow and len(item.body) > self._body_limit:
                # Only the part that will be written is kept: one huge body must not hold the queue's memory.
                full = item.size if item.size >= 0 else len(item.body)
                item = item._replace(body=bytes(item.body[: self._body_limit]), size=full)
            size = _cost(item)
            if (
                self._closed
                or len(self._queue) >= self._max_rows
                or self._bytes_in - self._bytes_out + size > self._max_bytes
            ):
                self._dropped_here(item.collection, CLOSED if self._closed else QUEUE_FULL)
                return False
            self._bytes_in += size
            self._queue.append(item)
            return True
        except Exception:
            return False

    def _dropped_here(self, collection: str, reason: str) -> None:
        key = (collection, reason)
        self._offer_dropped[key] = self._offer_dropped.get(key, 0) + 1
        if self._on_dropped is not None:
            self._on_dropped(collection, reason, 1)

    # Control.

    def flush(self, timeout: float = 2.0) -> bool:
        """Write and fsync every row offered before this call; False if that took longer than `timeout`."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 2.0) -> bool:
        """Write what is queued (for at most `timeout` seconds), fsync, close the files and stop the thread."""
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> WriterStats:
        """Counts so far: written per collection, dropped per (collection, reason)."""
        dropped = dict(self._thread_dropped)
        for key, count in list(self._offer_dropped.items()):
            dropped[key] = dropped.get(key, 0) + count
        return WriterStats(dict(self._written), dropped, len(self._queue))

    def open_files(self) -> frozenset[Path]:
        """The data files this writer holds open now (retention keeps them)."""
        return self._files.paths()

    # The writer thread.

    def _run(self) -> None:
        retain_at = 0.0
        synced_at = time.monotonic()
        while True:
            stopping = self._stopping
            try:
                now = time.monotonic()
                if now >= retain_at:
                    retain_at = now + _RETAIN_EVERY
                    self._retain()
                if not stopping:
                    self._wake.wait(_TICK)
                    self._wake.clear()
                waiters = [self._flushes.popleft() for _ in range(len(self._flushes))]
                self._drain()
                now = time.monotonic()
                if waiters or stopping or (self._sync_every and now - synced_at >= self._sync_every):
                    self._sync()
                    synced_at = now
                for done in waiters:
                    done.set()
                self._files.close_idle(_IDLE_CLOSE)
                self._warn_queue_full()
                self._warn(now)
            except Exception:  # the thread must outlive any bug: rows would pile up unwritten
                logger.exception("data collection: the writer thread failed; it carries on")
                time.sleep(_TICK)
            if stopping:
                self._files.close_all()
                return

    def _drain(self) -> None:
        # What is queued now, and no more: under a constant stream the loop must still reach fsync and retention.
        left = len(self._queue)
        while left:
            groups: dict[tuple[str, str], list[bytes]] = {}
            batch = 0
            while batch < _BATCH_BYTES and left:
                left -= 1
                try:
                    item = self._queue.popleft()
                except IndexError:  # cannot happen (only this thread pops), but must not loop forever
                    left = 0
                    break
                self._bytes_out += _cost(item)
                try:
                    line = encode_row(item, self.settings)
                except Exception as exc:
                    self._dropped(item.collection, ENCODE_ERROR, 1, str(exc))
                    continue
                batch += len(line)
                groups.setdefault((item.collection, self._partition(item.time)), []).append(line)
            for (collection, part), lines in groups.items():
                self._write(collection, self.settings.directory / collection / part / self._file_name, lines)

    def _partition(self, epoch: float) -> str:
        second = row_second(epoch)
        minute = second // 60  # every rolling rate is whole minutes
        if minute == self._last_minute:  # nearly always: rows come in time order
            return self._last_partition
        key = (minute, self.settings.rolling_rate)
        found = self._partitions.get(key)
        if found is None:
            if len(self._partitions) > 256:
                self._partitions.clear()
            found = self._partitions[key] = partition(second, self.settings.rolling_rate)
        self._last_minute, self._last_partition = minute, found
        return found

    def _write(self, collection: str, path: Path, lines: list[bytes]) -> None:
        start = 0
        while start < len(lines):  # one write per group, unless it is past _WRITE_BYTES: cut at row boundaries
            end, size = start, 0
            while end < len(lines) and (end == start or size + len(lines[end]) <= _WRITE_BYTES):
                size += len(lines[end])
                end += 1
            chunk = lines[start:end]
            start = end
            kept, exc = self._files.append(path, chunk)
            if kept:
                self._written[collection] = self._written.get(collection, 0) + kept
                self._callback(self._on_written, collection, kept)
            if exc is not None:
                reason = DISK_FULL if exc.errno in _FULL else WRITE_ERROR
                self._dropped(collection, reason, len(chunk) - kept, f"{exc.strerror or exc} writing {path}")

    def _sync(self) -> None:
        failed = self._files.sync()
        now = time.monotonic()
        if failed and now - self._warned.get("fsync", -_WARN_EVERY) >= _WARN_EVERY:
            self._warned["fsync"] = now
            path, exc = failed[0]
            logger.warning(
                "data collection: fsync of %s failed (%s): the last second of rows is lost if the machine stops "
                "now; %s",
                path,
                exc.strerror,
                _FIXES[WRITE_ERROR],
            )

    def _retain(self) -> None:
        settings = self.settings
        if settings.max_age_seconds is None and settings.max_bytes is None:
            return
        try:
            report = prune(
                settings.directory,
                max_age_seconds=settings.max_age_seconds,
                max_bytes=settings.max_bytes,
                keep=self._files.paths(),
            )
        except OSError as exc:
            logger.warning("data collection: retention could not prune %s: %s", settings.directory, exc)
            return
        if report.files_removed:
            logger.info(
                "data collection: retention removed %d files (%d bytes) from %s; %d bytes kept",
                report.files_removed,
                report.bytes_removed,
                settings.directory,
                report.bytes_left,
            )

    # Counting and telling.

    def _dropped(self, collection: str, reason: str, rows: int, detail: str) -> None:
        key = (collection, reason)
        self._thread_dropped[key] = self._thread_dropped.get(key, 0) + rows
        self._callback(self._on_dropped, collection, reason, rows)
        count, _ = self._pending.get(reason, (0, ""))
        self._pending[reason] = (count + rows, detail)

    def _warn_queue_full(self) -> None:
        seen = sum(n for (_, reason), n in list(self._offer_dropped.items()) if reason == QUEUE_FULL)
        if seen > self._queue_full_seen:
            count, _ = self._pending.get(QUEUE_FULL, (0, ""))
            detail = (
                f"the queue was full (queue_rows={self._max_rows}, queue_bytes={self._max_bytes}) "
                f"writing to {self.settings.directory}"
            )
            self._pending[QUEUE_FULL] = (count + seen - self._queue_full_seen, detail)
            self._queue_full_seen = seen

    def _warn(self, now: float) -> None:
        """One warning per reason per 10 s, with the rows dropped since the last one."""
        for reason, (count, detail) in list(self._pending.items()):
            if count and now - self._warned.get(reason, -_WARN_EVERY) >= _WARN_EVERY:
                self._warned[reason] = now
                del self._pending[reason]
                logger.warning("data collection dropped %d rows (%s): %s; %s", count, reason, detail, _FIXES[reason])

    @staticmethod
    def _callback(callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("data collection: a counting callback raised")
