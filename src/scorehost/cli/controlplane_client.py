"""What the control plane's commands share: the client (starting the control plane when none runs), errors as
one line naming the fix, tables and `--json`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scorehost.cli.output import new_table, print_renderable
from scorehost.cli.workspace import workspace_of

if TYPE_CHECKING:
    from scorehost.client import Client, ControlPlaneAddress

__all__ = ["client_of", "cli_errors", "json_option", "show_table"]

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(command: F) -> F:
    """Print a ScorehostError as one line (exit 1) instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scorehost.errors import ScorehostError

        try:
            return command(*args, **kwargs)
        except ScorehostError as error:
            raise click.ClickException(error.message) from None

    return wrapper  # type: ignore[return-value]


def show_table(columns: list[str], rows: list[list[str]]) -> None:
    shown = new_table(*columns)
    for row in rows:
        shown.add_row(*row)
    print_renderable(shown)


def client_of(home: Path | None) -> Client:
    """A client of the workspace's control plane, started first if it is not running (said on stderr: it and its
    gateway keep running in the background after the command)."""
    from scorehost.client import Client

    workspace = workspace_of(home)
    running = _answering(workspace)
    if running is not None:
        return Client(address=running)
    # Imported only now: it brings SQLAlchemy, a third of a second that each command to a running control plane
    # would pay for nothing.
    from scorehost.deploy.controlplane.daemon import start_control_plane

    address = start_control_plane(workspace)
    click.echo(
        f"started the control plane on {address.api} and the gateway on {address.gateway} "
        "(background; `scorehost controlplane stop` stops them)",
        err=True,
    )
    return Client(address=address)


def _answering(workspace: Path) -> ControlPlaneAddress | None:
    """The workspace's control plane's address if it answers now, else None."""
    import httpx

    from scorehost.client import ControlPlaneAddress
    from scorehost.errors import ServiceUnavailable

    try:
        address = ControlPlaneAddress.of(workspace)
        answer = httpx.get(
            f"{address.api}/api/v1/health", headers={"Authorization": f"Bearer {address.token}"}, timeout=2.0
        )
    except (ServiceUnavailable, httpx.HTTPError):
        return None
    return address if answer.status_code == 200 else None


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
