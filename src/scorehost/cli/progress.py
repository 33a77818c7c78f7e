"""Progress on stderr: bars for long copies (registrations, downloads, verification), a status line for builds."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.status import Status

__all__ = ["BarProgress", "LineStatus"]

SHOWN_FROM = 8_000_000
"""Copies smaller than this finish before a bar would help. Decimal, as the "8 MB" of the help and the bar's sizes."""


class BarProgress:
    """A `TransferProgress` that draws a rich progress bar for copies of SHOWN_FROM bytes or more.

    `enabled=None` draws only on a terminal; True draws on any stderr (for logs and tests).
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self._console = Console(stderr=True, force_terminal=True if enabled else None)
        self._enabled = enabled if enabled is not None else self._console.is_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def begin(self, description: str, total: int) -> None:
        if not self._enabled or total < SHOWN_FROM:
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, count: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, count)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class LineStatus:
    """A spinner with the latest line of a long step (uv building an environment), on stderr of a terminal only;
    called with each line. `enabled=True` draws on any stderr."""

    def __init__(self, title: str, enabled: bool | None = None) -> None:
        self._console = Console(stderr=True, force_terminal=True if enabled else None)
        self._enabled = enabled if enabled is not None else self._console.is_terminal
        self._title = title
        self._status: Status | None = None

    def __enter__(self) -> LineStatus:
        if self._enabled:
            self._status = self._console.status(self._title)
            self._status.start()
        return self

    def __call__(self, line: str) -> None:
        if self._status is not None and line.strip():
            self._status.update(f"{self._title}: {escape(line.strip()[:120])}")

    def __exit__(self, *_: object) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
