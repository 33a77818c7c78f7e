"""Which generation of a deployment serves, which one failed and why, as one table cell and one line.

A deployment's record (`/api/v1/.../deployments/NAME`) says which generation is declared (`generation`) and, in
its `status` from the controller, which one serves (`serving_generation`), which one is starting
(`starting_generation`) and why the declared one cannot start (`error`; the record's `failure` keeps it over a
control-plane restart). An update that fails leaves the older generation serving: declared is not serving.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["failure_reason", "failure_log_command", "generation_text", "problem_line"]

# The start of the controller's reasons: the table's columns say it already.
_PREFIX = re.compile(r"^\S+/\S+ generation \d+ cannot start: ")
# A reason that names its generation: "generation 1, which served before the restart, cannot start again: ..."
_NAMED = re.compile(r"^generation (\d+)\b")


def _serving(deployment: dict[str, Any]) -> int | None:
    status = deployment.get("status") or {}
    if "serving_generation" in status:  # the controller's: what runs now
        found: int | None = status["serving_generation"]
        return found
    return deployment.get("serving_generation")  # the record's: the last generation that became ready


def _failure(deployment: dict[str, Any]) -> str:
    status = deployment.get("status") or {}
    return str(status.get("error") or deployment.get("failure") or "")


def generation_text(deployment: dict[str, Any]) -> str:
    """The generation that serves (`-`: none), then the declared one when it is another: `2`, `1 (2 starting)`,
    `1 (2 failed)`, `- (1 failed)`."""
    declared = deployment["generation"]
    serving = _serving(deployment)
    shown = "-" if serving is None else str(serving)
    if serving == declared:
        return shown
    status = deployment.get("status") or {}
    if status.get("starting_generation") == declared or status.get("state") in ("starting", "updating"):
        return f"{shown} ({declared} starting)"
    if _failure(deployment):
        return f"{shown} ({declared} failed)"
    return f"{shown} ({declared} declared)"


def failure_reason(deployment: dict[str, Any]) -> str:
    """Why the declared generation cannot start, in one line (the log lines that follow it left out); "" if it
    did not fail."""
    lines = _failure(deployment).splitlines()
    return _PREFIX.sub("", lines[0]) if lines else ""


def _failed_generation(deployment: dict[str, Any], reason: str) -> int:
    named = _NAMED.match(reason)
    return int(named.group(1)) if named else int(deployment["generation"])


def failure_log_command(endpoint: str, deployment: dict[str, Any]) -> str:
    """The command that prints the log of the generation that failed to start."""
    generation = _failed_generation(deployment, failure_reason(deployment))
    return f"scorehost deployments logs {endpoint} {deployment['name']} --generation {generation}"


def problem_line(endpoint: str, deployment: dict[str, Any]) -> str | None:
    """`NAME: generation 2 failed: REASON (its log: `scorehost deployments logs E NAME --generation 2`)`, or None
    when the declared generation did not fail."""
    reason = failure_reason(deployment)
    if not reason:
        return None
    if not _NAMED.match(reason):
        reason = f"generation {deployment['generation']} failed: {reason}"
    return f"{deployment['name']}: {reason} (its log: `{failure_log_command(endpoint, deployment)}`)"
