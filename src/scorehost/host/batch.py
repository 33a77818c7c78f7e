"""Adaptive batching, as an entry script asks for it: a `run_batch(inputs)` beside `run()`.

A script opts in by defining `run_batch(inputs: list) -> list`: one input per request, in the form `run()`
would receive it, and one result per input, in the same order. A plain function, not a decorator we require:
the script still imports and runs unchanged where scorehost is not installed (Azure ML calls `run()`).
`@scorehost.batch(max_batch_size=..., max_wait_ms=...)` on `run_batch` sets its limits where the script
wants to own them; `--max-batch-size` and `--max-batch-wait-ms` override both.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from scorehost.errors import BadRunSignature

__all__ = ["BATCH_FUNCTION", "BatchSettings", "batch", "declared_batch_size", "settings_of"]

BATCH_FUNCTION = "run_batch"
_ATTRIBUTE = "__scorehost_batch__"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How requests are grouped: at most `max_batch_size` per call, waiting at most `max_wait_ms` for more
    (and never when no other request is on its way)."""

    max_batch_size: int = 32
    max_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 4096:
            raise ValueError(f"max_batch_size must be between 1 and 4096, not {self.max_batch_size}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise ValueError(f"max_wait_ms must be between 0 and 10000, not {self.max_wait_ms}")

    def describe(self) -> str:
        return f"up to {self.max_batch_size} requests per run_batch() call, waiting at most {self.max_wait_ms:g} ms"


def batch(*, max_batch_size: int = 32, max_wait_ms: float = 2.0) -> Callable[[F], F]:
    """Set the batching limits of the script's `run_batch` (optional: the defaults apply without it)."""
    settings = BatchSettings(max_batch_size, max_wait_ms)

    def mark(function: F) -> F:
        setattr(function, _ATTRIBUTE, settings)
        return function

    return mark


def settings_of(function: Callable[..., object], script: Path) -> BatchSettings:
    """The limits `@scorehost.batch` put on `function`, or the defaults."""
    found = getattr(function, _ATTRIBUTE, None)
    if found is None:
        return BatchSettings()
    if not isinstance(found, BatchSettings):
        raise BadRunSignature(f"{script.name}: run_batch carries a {_ATTRIBUTE} that is not scorehost.batch()'s")
    return found


def declared_batch_size(script: Path) -> int | None:
    """The batch size the script declares, read from its source without importing it (a worker chooses how it
    answers requests before loading the script): None without a top-level `run_batch`, else the literal
    `max_batch_size` of its `@scorehost.batch(...)`, else the default."""
    try:
        tree = ast.parse(script.read_bytes(), str(script))
    except (OSError, SyntaxError, ValueError):
        return None  # loading reports it
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == BATCH_FUNCTION:
            for decorator in node.decorator_list:
                for keyword in decorator.keywords if isinstance(decorator, ast.Call) else ():
                    if keyword.arg == "max_batch_size" and isinstance(keyword.value, ast.Constant):
                        value = keyword.value.value
                        if isinstance(value, int) and not isinstance(value, bool):
                            return value
            return BatchSettings().max_batch_size
    return None
