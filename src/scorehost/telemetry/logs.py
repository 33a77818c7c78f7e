"""Logging: one format for the server and the script, each line tagged with the request it belongs to.

The script's `print()` output becomes log records (logger `scorehost.print`), as on the reference
server, so it carries the request id and comes out as JSON with `--log-format json`.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from typing import Literal, TextIO

import orjson

from scorehost.telemetry.tracecontext import trace_id_var

__all__ = ["AccessLog", "PrintToLog", "configure_logging", "request_id_var"]

request_id_var: ContextVar[str] = ContextVar("scorehost_request_id", default="")

_TEXT_FORMAT = "%(asctime)s %(levelname)-5s [%(process)d] %(name)s -%(request_tag)s %(message)s"
# Attributes every LogRecord has; anything else was passed through `extra=` and goes into JSON lines.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_tag", "request_id"}


class _RequestTag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        record.request_id = request_id
        if request_id and not hasattr(record, "trace_id"):
            trace_id = trace_id_var.get()
            if trace_id:
                record.trace_id = trace_id
        record.request_tag = f" [{request_id}]" if request_id else ""
        return True


class _UTCFormatter(logging.Formatter):
    @staticmethod
    def converter(seconds: float | None = None) -> time.struct_time:
        return time.gmtime(seconds)

    default_msec_format = "%s.%03dZ"


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        line.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(
    log_format: Literal["text", "json"] = "text", level: str = "info", stream: TextIO | None = None
) -> None:
    """Send every log record to `stream` (stderr) in one format, and turn prints into log records."""
    handler = logging.StreamHandler(stream or sys.__stderr__)
    handler.addFilter(_RequestTag())
    handler.setFormatter(_JSONFormatter() if log_format == "json" else _UTCFormatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # granian's own start/stop lines repeat what the supervisor says; keep its warnings.
    logging.getLogger("_granian").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("granian").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    if not isinstance(sys.stdout, PrintToLog):
        sys.stdout = PrintToLog(logging.getLogger("scorehost.print"), sys.stdout)


class AccessLog:
    """The per-request line, formatted here rather than by the logging module (a large share of the
    cost of a small model's request), and written in one system call for all the lines of the last
    50 ms, by the request that finds them that old. A background thread writes what an idle server
    left pending, once a second: a thread that woke more often would take the GIL from the request
    thread each time, and on a busy machine that thread can wait a time slice to get it back.
    `flush()` before the process exits."""

    FLUSH_INTERVAL = 0.05
    IDLE_FLUSH_INTERVAL = 1.0

    def __init__(self, log_format: Literal["text", "json"] = "text", enabled: bool = True) -> None:
        self.json = log_format == "json"
        self.enabled = enabled and logging.getLogger("scorehost.access").isEnabledFor(logging.INFO)
        self._fd = (sys.__stderr__ or sys.stderr).fileno()
        self._pid = os.getpid()
        self._second = -1
        self._stamp = ""
        self._pending: collections.deque[bytes] = collections.deque()
        self._flushed = time.monotonic()
        self._writing = threading.Lock()  # one writer at a time, so that lines never interleave
        if self.enabled:
            threading.Thread(target=self._flush_forever, name="scorehost-access-log", daemon=True).start()

    def flush(self) -> None:
        """Write every pending line now."""
        lines = []
        with contextlib.suppress(IndexError):
            while True:
                lines.append(self._pending.popleft())
        data = memoryview(b"".join(lines))
        with self._writing, contextlib.suppress(OSError):  # a closed or full log stream must not fail the server
            while data:
                data = data[os.write(self._fd, data) :]

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.IDLE_FLUSH_INTERVAL)
            if self._pending and time.monotonic() - self._flushed >= self.FLUSH_INTERVAL:
                self._flushed = time.monotonic()
                self.flush()

    def write(self, method: str, path: str, status: int, duration_ms: float, size: int, request_id: str) -> None:
        """Log one request: method, path, status, milliseconds, body bytes and request id."""
        if not self.enabled:
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S" if self.json else "%Y-%m-%d %H:%M:%S", time.gmtime(now))
        millis = int((now - second) * 1000)
        if self.json:
            record = {
                "time": f"{self._stamp}.{millis:03d}Z",
                "level": "info",
                "logger": "scorehost.access",
                "pid": self._pid,
                "message": f"{method} {path} {status} {duration_ms:.3f}ms {size}B",
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 3),
                "bytes": size,
            }
            if request_id and (trace_id := trace_id_var.get()):  # a scoring request: its trace is this context's
                record["trace_id"] = trace_id
            line = orjson.dumps(record) + b"\n"
        else:
            tag = f" [{request_id}]" if request_id else ""
            text = f"{self._stamp}.{millis:03d}Z INFO  [{self._pid}] scorehost.access -{tag} "
            line = f"{text}{method} {path} {status} {duration_ms:.3f}ms {size}B\n".encode()
        self._pending.append(line)
        monotonic = time.monotonic()
        if monotonic - self._flushed >= self.FLUSH_INTERVAL:
            self._flushed = monotonic
            self.flush()


class PrintToLog(io.TextIOBase):
    """A stdout replacement: each complete line written becomes an INFO record."""

    def __init__(self, logger: logging.Logger, original: TextIO) -> None:
        self._logger = logger
        self._original = original
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        *lines, self._pending.text = buffered.split("\n")
        for line in lines:
            self._logger.info(line)
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._pending, "text", "")
        if rest:
            self._pending.text = ""
            self._logger.info(rest)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")
