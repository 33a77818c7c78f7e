"""What a replica that cannot start tells the control plane: the script's error, as `scorehost serve` prints it.

Serve keeps what a replica's constructor raised only as text. After three failed starts the deployment's
status message (`serve.status()`, and the controller's log) holds `str()` of Ray's RayTaskError, whole: Ray's
frames with ANSI colours, Serve's own wrapper, the exception chain, and, among them, the exception's own
text (checked on Ray 2.60). So `ScoringReplica` raises `ReplicaStartFailed`, whose text is the error's headline
and the script's traceback, then one marked line holding both as JSON; `startup_error()` finds that line again
in Serve's message. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass

from scorehost.errors import ScorehostError, ScriptLoadError

__all__ = ["MARK", "ReplicaStartFailed", "StartupError", "failure_of", "startup_error"]

MARK = "scorehost-startup-error: "
_MARKED = re.compile(re.escape(MARK) + r"(?=\{)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class StartupError:
    """Why a replica could not start: one line (`init() in score.py raised ...`) and the traceback, if any."""

    headline: str
    traceback: str = ""

    def lines(self) -> tuple[str, ...]:
        return (self.headline, *self.traceback.splitlines())


class ReplicaStartFailed(RuntimeError):
    """A replica cannot start: the headline and traceback, for Ray's logs, then the marked line for the backend."""

    @classmethod
    def of(cls, error: BaseException) -> ReplicaStartFailed:
        found = _describe(error)
        payload = json.dumps({"error": found.headline, "traceback": found.traceback})  # one line: newlines escaped
        return cls("\n".join((*found.lines(), MARK + payload)))


def _describe(error: BaseException) -> StartupError:
    if isinstance(error, ScriptLoadError):  # the script's own traceback, scorehost's frames left out
        return StartupError(error.message, error.details)
    if isinstance(error, ScorehostError):  # what to fix is in the message: a damaged model, a bad option
        return StartupError(error.message)
    # A bug (ours, or a library's): the whole traceback.
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
    return StartupError(f"the replica failed: {type(error).__name__}: {error}", text)


def startup_error(message: str) -> StartupError | None:
    """The error a `ReplicaStartFailed` carried, read back from Serve's status message that holds it (the last,
    if several); None when it holds none (the replica failed before scorehost ran: Ray's runtime environment)."""
    decoder = json.JSONDecoder()
    for found in reversed(list(_MARKED.finditer(message))):
        try:
            value, _ = decoder.raw_decode(message, found.end())
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("error"), str):
            return StartupError(value["error"], str(value.get("traceback") or ""))
    return None


def failure_of(message: str) -> StartupError:
    """Why a deployment's replicas cannot start, from Serve's status message: the error a replica carried, else
    Serve's message itself (Ray's colours removed; its last line, the exception, as the headline)."""
    found = startup_error(message)
    if found is not None:
        return found
    text = _ANSI.sub("", message).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return StartupError(lines[-1] if lines else "Serve gave no reason", text if len(lines) > 1 else "")
