"""What `endpoints show` says of each deployment's generations, from the records the API answers (in-process)."""

from __future__ import annotations

from typing import Any

import pytest

from scorehost.cli.endpoints import traffic_text
from scorehost.cli.generations import failure_reason, generation_text, problem_line

_REASON = (
    "mnist/blue generation 2 cannot start: exited with code 3: the entry script cannot be served: init() in "
    "score.py raised RuntimeError: model file is corrupt\nlast log lines:\n" + "\n".join(f"line {n}" for n in range(15))
)


def _deployment(generation: int, **status: Any) -> dict[str, Any]:
    failure = status.pop("failure", None)
    return {"name": "blue", "generation": generation, "failure": failure, "status": status}


@pytest.mark.parametrize(
    ("deployment", "shown"),
    [
        (_deployment(1, state="ready", serving_generation=1), "1"),
        (_deployment(2, state="updating", serving_generation=1, starting_generation=2), "1 (2 starting)"),
        (_deployment(2, state="ready", serving_generation=1, error=_REASON), "1 (2 failed)"),
        (_deployment(1, state="failed", serving_generation=None, error=_REASON), "- (1 failed)"),
        (_deployment(1, state="starting", serving_generation=None, starting_generation=1), "- (1 starting)"),
        # A restarted control plane knows the failure from the record only
        (_deployment(2, state="ready", serving_generation=1, failure=_REASON), "1 (2 failed)"),
    ],
    ids=["ready", "updating", "update-failed", "create-failed", "creating", "failure-recorded"],
)
def test_the_serving_generation_comes_first(deployment: dict[str, Any], shown: str) -> None:
    assert generation_text(deployment) == shown


def test_a_failure_is_one_line_naming_the_command_with_the_whole_log() -> None:
    failed = _deployment(2, state="ready", serving_generation=1, error=_REASON)
    assert failure_reason(failed) == (
        "exited with code 3: the entry script cannot be served: init() in score.py raised RuntimeError: model file "
        "is corrupt"
    )
    line = problem_line("mnist", failed)
    assert line == (
        f"blue: generation 2 failed: {failure_reason(failed)} "
        "(its log: `scorehost deployments logs mnist blue --generation 2`)"
    )
    assert problem_line("mnist", _deployment(1, state="ready", serving_generation=1)) is None


def test_a_generation_that_cannot_come_back_after_a_restart_is_named() -> None:
    error = "generation 1, which served before the restart, cannot start again: exited with code 3\nlast log lines:"
    lost = _deployment(2, state="failed", serving_generation=None, error=error)
    assert problem_line("mnist", lost) == (
        "blue: generation 1, which served before the restart, cannot start again: exited with code 3 "
        "(its log: `scorehost deployments logs mnist blue --generation 1`)"
    )


def test_traffic_names_the_mirror() -> None:
    assert traffic_text({"traffic": {"blue": 90, "green": 10}, "mirror": None}) == "blue=90 green=10"
    mirrored = {"traffic": {"blue": 100}, "mirror": {"deployment": "green", "percent": 10}}
    assert traffic_text(mirrored) == "blue=100, mirror green=10%"
    assert traffic_text({"traffic": {}, "mirror": None}) == "no traffic"
