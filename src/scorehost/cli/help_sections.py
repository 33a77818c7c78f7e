"""Commands whose `--help` lists their options under headings (click has no option groups of its own)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

__all__ = ["SectionedCommand"]


class SectionedCommand(click.Command):
    """A command whose options are shown in `sections`: (heading, parameter names) pairs, in that order, where a
    name ending in `*` stands for every name it starts; the options no section names come first, under "Options".
    Only --help changes: parsing is click's own."""

    def __init__(self, *args: Any, sections: Sequence[tuple[str, Sequence[str]]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sections = [(heading, tuple(names)) for heading, names in sections]

    def heading_of(self, name: str) -> str:
        for heading, names in self.sections:
            if any(name == wanted or (wanted.endswith("*") and name.startswith(wanted[:-1])) for wanted in names):
                return heading
        return "Options"

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {"Options": []}
        for heading, _ in self.sections:
            rows.setdefault(heading, [])
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):  # arguments: in the usage line
                rows[self.heading_of(param.name or "")].append(record)
        for heading, records in rows.items():
            if records:
                with formatter.section(heading):
                    formatter.write_dl(records)
