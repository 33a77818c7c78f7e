"""Decide what an undecorated `run(data)` receives: the `"data"` value's JSON text, or the raw body.

The public documentation says `run()` gets the JSON text that follows the `"data"` key; the reference
server passes the whole body, so most published scripts do `json.loads(raw)["data"]` themselves.
`auto` tells the two kinds apart by reading the script's source, and that of the modules of its code folder
it imports (source_imports.py), never executing any of it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from scorehost.host.source_imports import MAX_FILES, imported_folder_modules

__all__ = ["RunInput", "RunInputRule", "decide_run_input", "find_data_key_read"]


class RunInput(StrEnum):
    """The `run_input` setting."""

    AUTO = "auto"
    DATA = "data"
    BODY = "body"


class RunInputRule(StrEnum):
    """The rule in force for a loaded script (what `auto` resolved to)."""

    DATA = "data"  # always the JSON text of the body's "data" value
    BODY = "body"  # always the raw body text, as the reference server passes it
    DATA_IF_ONLY_KEY = "data-if-only-key"  # per request: {"data": ...} alone gives the value, else raw


@dataclass(frozen=True)
class RunInputDecision:
    rule: RunInputRule
    reason: str

    def describe(self) -> str:
        """The start-up log line: the rule, why, and the flag that overrides it."""
        what = {
            RunInputRule.DATA: 'run() receives the JSON text of the body\'s "data" value',
            RunInputRule.BODY: "run() receives the raw request body",
            RunInputRule.DATA_IF_ONLY_KEY: (
                'run() receives the JSON text of "data" when the body is {"data": ...} alone, '
                "and the raw body otherwise"
            ),
        }[self.rule]
        return f"{what} ({self.reason}); override with --run-input data|body"


def find_data_key_read(source: str, filename: str = "<script>") -> int | None:
    """Line of the first read of a "data" key (`x["data"]`, `x.get("data")`) in the source, or None."""
    tree = _parse(source, filename)
    return None if tree is None else _data_key_line(tree)


def _parse(source: str, filename: str) -> ast.Module | None:
    try:
        return ast.parse(source, filename)
    except (SyntaxError, ValueError):  # ValueError: null bytes
        return None


def _data_key_line(tree: ast.Module) -> int | None:
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and not isinstance(node.ctx, ast.Store)  # `result["data"] = ...` builds an answer, reads nothing
            and _is_data_constant(node.slice)
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and node.args
                and _is_data_constant(node.args[0])
            )
        ):
            lines.append(node.lineno)
    return min(lines) if lines else None


def find_run_decorator(source: str) -> str | None:
    """`input_schema` or `rawhttp` when the source decorates a function with it (read, not imported), else None.

    The run_input rule applies only to an undecorated run(); this lets the start-up banner say so before any
    worker has imported the script."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name in ("input_schema", "rawhttp"):
                    return str(name)
    return None


def _is_data_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "data"


def decide_run_input(setting: RunInput, script: Path) -> RunInputDecision:
    """Resolve the setting for this script; `auto` looks for a read of the "data" key in its source, then in
    the modules of its folder that it imports (transitively, at most MAX_FILES of them)."""
    if setting is RunInput.DATA:
        return RunInputDecision(RunInputRule.DATA, "set by run_input=data")
    if setting is RunInput.BODY:
        return RunInputDecision(RunInputRule.BODY, "set by run_input=body")
    tree = _parse(script.read_text(encoding="utf-8", errors="replace"), str(script))
    line = None if tree is None else _data_key_line(tree)
    if line is not None:
        return RunInputDecision(RunInputRule.BODY, f'run_input=auto: {script.name} line {line} reads a "data" key')
    helpers = []
    for module in imported_folder_modules(script, tree) if tree is not None else ():
        line = _data_key_line(module.tree)
        if line is not None:
            return RunInputDecision(RunInputRule.BODY, f'run_input=auto: {module.where(line)} reads a "data" key')
        helpers.append(module.name)
    reason = f'run_input=auto: {script.name} never reads a "data" key itself'
    if helpers:
        shown = ", ".join(helpers[:3]) + (f" and {len(helpers) - 3} more" if len(helpers) > 3 else "")
        limit = f", the first {MAX_FILES} followed" if len(helpers) >= MAX_FILES else ""
        reason += f", nor do the modules of its folder it imports ({shown}{limit})"
    return RunInputDecision(RunInputRule.DATA_IF_ONLY_KEY, reason)
