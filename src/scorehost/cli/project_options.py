"""The options every command that reads an Azure ML YAML file shares: `-f FILE`, `--set KEY.PATH=VALUE`, and
the warnings the file gave, printed once each on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["echo_warning", "echo_warnings", "file_option", "set_option"]

F = TypeVar("F", bound=Callable[..., Any])


def file_option(help_text: str, *, required: bool = False) -> Callable[[F], F]:
    """`-f/--file FILE` (the parameter `yaml_file`)."""
    return click.option(
        "-f",
        "--file",
        "yaml_file",
        required=required,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help_text,
    )


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Change a field of the -f file, as `az ml --set` does (repeatable).",
)


def echo_warnings(warnings: Iterable[str]) -> None:
    """`warning: ...` on stderr, once each, in order."""
    for warning in dict.fromkeys(warnings):
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def echo_warning(warning: str) -> None:
    """One `warning: ...` line on stderr."""
    echo_warnings([warning])
