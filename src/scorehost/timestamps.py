"""Times as scorehost shows them: ISO 8601 in UTC, to the millisecond, e.g. `2026-12-07T14:03:11.437Z`.

One format for every time in the API's JSON and every `--json` output (records keep Unix seconds inside), the same
as the log lines' `time` and collected rows' `time`: it sorts as text, `datetime.fromisoformat` (Python 3.11+),
JavaScript's `Date` and jq's `fromdateiso8601` (after dropping the fraction) read it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import overload

__all__ = ["iso_utc", "parse_iso_utc"]


@overload
def iso_utc(seconds: float) -> str: ...


@overload
def iso_utc(seconds: None) -> None: ...


def iso_utc(seconds: float | None) -> str | None:
    """Unix time `seconds` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; None stays None (a time not known)."""
    if seconds is None:
        return None
    whole = int(seconds // 1)
    millis = int(round((seconds - whole) * 1000))
    if millis == 1000:  # x.9996 rounds up to the next second
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def parse_iso_utc(text: str) -> float:
    """Unix seconds from an ISO 8601 time (`iso_utc`'s, or any other; UTC unless it names an offset).

    ValueError for text that is not a time."""
    instant = datetime.fromisoformat(text)
    return (instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)).timestamp()
