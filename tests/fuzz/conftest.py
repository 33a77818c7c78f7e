"""The fuzz suite: its tests marked `fuzz`; each records its cases and answers, and the terminal summary
prints them (`pytest -m fuzz` runs the suite alone, `-m "not ray and not fuzz"` leaves it out)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz._tally import Recorder, Tally

_TALLY = Tally()
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """This test's counts (cases tried, requests, statuses), printed at the end of the session."""
    row = _TALLY.recorder(request.node.nodeid.removeprefix("tests/fuzz/"))
    began = time.monotonic()
    yield row
    row.seconds += time.monotonic() - began


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    row = _TALLY.rows.get(item.nodeid.removeprefix("tests/fuzz/"))
    if row is not None and report.when == "call":
        row.outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TALLY.rows:
        terminalreporter.write_sep("=", "fuzz: cases tried and server 5xx")
        for line in _TALLY.lines():
            terminalreporter.write_line(line)
