"""`--home`: which workspace a command works in, given before or after the subcommand.

Every group that works in a workspace takes `--home` (`group_home_option`), and so does each of its commands
(`home_option`): `scorehost models --home W list` and `scorehost models list --home W` are the same command. The
value travels in `ctx.meta`, which click shares between a group's context and its subcommand's; the one given
after the subcommand wins.
"""

from __future__ import annotations

from pathlib import Path

import click

from scorehost.config import WorkspaceSettings

__all__ = ["group_home_option", "home_option", "workspace_of"]

_KEY = "scorehost.home"
_HELP = "Workspace folder: registry, environments, endpoints and deployments (SCOREHOST_HOME).  [default: ~/.scorehost]"


def workspace_of(home: Path | None) -> Path:
    """The workspace folder from --home, else SCOREHOST_HOME, else ~/.scorehost."""
    return (WorkspaceSettings(home=home) if home else WorkspaceSettings()).workspace


def _remember(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """The value given here, else the one given before the subcommand (None: SCOREHOST_HOME decides)."""
    if value is not None:
        ctx.meta[_KEY] = value
        return value
    found: Path | None = ctx.meta.get(_KEY)
    return found


_TYPE = click.Path(file_okay=False, path_type=Path)

home_option = click.option("--home", type=_TYPE, callback=_remember, metavar="DIR", help=_HELP)
"""A command's `--home` (the parameter `home`: None when neither it nor its group's was given)."""

group_home_option = click.option(
    "--home", type=_TYPE, callback=_remember, metavar="DIR", expose_value=False, is_eager=True, help=_HELP
)
"""A group's `--home`, for its commands' `home_option` to find."""
