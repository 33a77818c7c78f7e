"""What `--help` shows below the options: every command's examples, in one shape (tests/cli/test_help_texts.py
holds every command to it), and the sizes its options take."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

__all__ = ["SIZE", "examples"]


def examples(*commands: str, note: str = "") -> str:
    """A command's epilog: `Examples:` and `commands` one a line, as written (a line ending in a backslash goes on
    to the next, indented), then `note` as a paragraph click wraps."""
    block = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in commands) + "\n"
    return f"{block}\n{note}\n" if note else block


if TYPE_CHECKING:
    _ParamType = click.ParamType[int, Any]  # generic from click 8.2 on
else:
    _ParamType = click.ParamType


class _Size(_ParamType):
    """A size in bytes, written as a number or with a unit: 100MiB, 10MB, 512k (k, M, G, T: powers of 1000; KiB,
    MiB, GiB, TiB: of 1024), as every size option of scorehost takes it."""

    name = "size"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from scorehost.config import parse_size

        try:
            return parse_size(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


SIZE = _Size()
"""The click type of a size option: bytes (an int) from `100MiB`, `10MB` or `1048576`."""
