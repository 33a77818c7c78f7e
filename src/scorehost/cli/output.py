"""What the CLI prints: JSON for scripts, tables for people (wide and unpadded when piped)."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["echo_json", "new_table", "print_renderable"]


def echo_json(value: Any) -> None:
    """`value` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2))


def new_table(*columns: str) -> Any:
    """An empty rich table with these headers, in the CLI's style."""
    from rich.table import Table

    made = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        made.add_column(column, overflow="fold")
    return made


def print_renderable(renderable: Any) -> None:
    """Print a table (or any rich renderable) on stdout."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        console.print(renderable)
        return
    # Piped: no wrapping at 80 columns, so each row stays one line for grep and cut, and no padding
    # after the last column, so lines do not end in spaces.
    console = Console(width=100_000)
    with console.capture() as captured:
        console.print(renderable)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
