"""Progress bars for long copies (registrations, downloads, verification), on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["BarProgress"]

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
