"""What the fuzz tests tried and what came back, per test, for the session's closing summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings

__all__ = ["Recorder", "Tally", "fuzz_settings"]


def fuzz_settings(max_examples: int) -> settings:
    """Bounded and repeatable, for CI: the same cases every run (derandomize), no example database, no deadline
    (a busy machine), and no shrinking (each case is a request to a real server; the failure message gives the
    whole request instead)."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        report_multiple_bugs=False,
        suppress_health_check=(
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ),
    )


@dataclass
class Recorder:
    """One test's counts: cases tried (examples), requests sent, the statuses that came back."""

    cases: int = 0
    requests: int = 0
    unanswered: int = 0  # requests the server closed, reset or dropped without an answer
    statuses: Counter[int] = field(default_factory=Counter)
    began: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    outcome: str = ""

    def case(self) -> None:
        self.cases += 1

    def answer(self, status: int | None) -> None:
        """One request sent and its status (None: no answer came)."""
        self.requests += 1
        if status is None:
            self.unanswered += 1
        else:
            self.statuses[status] += 1

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


class Tally:
    """Every fuzz test's recorder, by test id."""

    def __init__(self) -> None:
        self.rows: dict[str, Recorder] = {}

    def recorder(self, test_id: str) -> Recorder:
        return self.rows.setdefault(test_id, Recorder())

    def lines(self) -> list[str]:
        """The summary: one line per test, then the totals (known 5xx: found by a test marked xfail)."""
        width = max(len(test_id) for test_id in self.rows)
        lines = [
            f"{'test':<{width}}  {'cases':>6}  {'requests':>8}  {'5xx':>4}  {'no answer':>9}  {'s':>5}  "
            f"{'outcome':<8}  statuses"
        ]
        for test_id, row in self.rows.items():
            statuses = " ".join(f"{status}x{count}" for status, count in sorted(row.statuses.items()))
            lines.append(
                f"{test_id:<{width}}  {row.cases:>6}  {row.requests:>8}  {row.server_errors:>4}  "
                f"{row.unanswered:>9}  {row.seconds:>5.1f}  {row.outcome:<8}  {statuses}"
            )
        rows = self.rows.values()
        known = sum(row.server_errors for row in rows if row.outcome == "xfailed")
        unexpected = sum(row.server_errors for row in rows) - known
        lines.append(
            f"fuzz totals: {sum(row.cases for row in rows)} cases, {sum(row.requests for row in rows)} requests, "
            f"{unexpected} server 5xx, {known} known server 5xx (xfail), "
            f"{sum(row.unanswered for row in rows)} without an answer, {sum(row.seconds for row in rows):.1f} s"
        )
        return lines
