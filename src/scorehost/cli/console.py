"""`scorehost console`: the web console's address, with a one-time sign-in link, opened in a browser."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from scorehost.cli.controlplane_client import cli_errors, client_of
from scorehost.cli.help_text import examples
from scorehost.cli.workspace import home_option

__all__ = ["console_command"]


def _has_browser() -> bool:
    """A browser can show a page here: a desktop session (Linux needs a display), not an SSH shell."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command(
    "console",
    epilog=examples(
        "scorehost console",
        "scorehost console --no-browser          # print the link only (over SSH: forward the API port first)",
        note="The console is served by the control plane at /console/ on its API port (127.0.0.1:5100 unless "
        "`scorehost controlplane start --host/--api-port` said otherwise); this command starts the control plane "
        "when it is not running. The link signs in once, within two minutes; later, sign in with the token in "
        "$SCOREHOST_HOME/controlplane/token.",
    ),
)
@home_option
@click.option("--no-browser", is_flag=True, help="Only print the address and the sign-in link; open no browser.")
@click.option("--json", "as_json", is_flag=True, help="Print {console, signin} as JSON (implies --no-browser).")
@cli_errors
def console_command(home: Path | None, no_browser: bool, as_json: bool) -> None:
    """Open the web console: endpoints, deployments, models, a Test panel and live charts."""
    client = client_of(home)
    link = client.console_link()
    address = f"{client.address.api}/console/"
    if as_json:
        click.echo(json.dumps({"console": address, "signin": link}))
        return
    click.echo(f"console: {address}")
    click.echo(f"sign in (once, within two minutes): {link}")
    if no_browser or not _has_browser():
        return
    import webbrowser

    if not webbrowser.open(link):
        click.echo("no browser could be opened here: open the link above in yours", err=True)
