"""`scorehost controlplane start|stop|status`: the process behind endpoints and deployments."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scorehost.config import WorkspaceSettings

__all__ = ["controlplane_group", "workspace_of"]


def workspace_of(home: Path | None) -> Path:
    """The workspace folder from --home, else SCOREHOST_HOME, else ~/.scorehost."""
    return (WorkspaceSettings(home=home) if home else WorkspaceSettings()).workspace


home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder (SCOREHOST_HOME).  [default: ~/.scorehost]",
)


@click.group("controlplane")
def controlplane_group() -> None:
    """Start, stop or check the control plane (the endpoints commands start it when needed)."""


@controlplane_group.command("start")
@home_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for the API and the gateway.")
@click.option("--api-port", default=5100, show_default=True, type=click.IntRange(0, 65535))
@click.option("--gateway-port", default=5080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="The gateway it starts sends its span of each request it forwards to this OTLP/HTTP traces URL, e.g. "
    "http://127.0.0.1:4318/v1/traces; needs pip install 'scorehost[otel]'. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
    "in the environment does the same, and the deployments' servers then send theirs too.  [default: none]",
)
def start_command(home: Path | None, host: str, api_port: int, gateway_port: int, otlp_endpoint: str | None) -> None:
    """Start the control plane in the background (nothing happens if it runs already)."""
    from scorehost.deploy.controlplane.daemon import start_control_plane
    from scorehost.errors import ScorehostError

    try:
        address = start_control_plane(
            workspace_of(home), host=host, api_port=api_port, gateway_port=gateway_port, otlp_endpoint=otlp_endpoint
        )
    except ScorehostError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"control plane: {address.api}  gateway: {address.gateway}")


@controlplane_group.command("stop")
@home_option
def stop_command(home: Path | None) -> None:
    """Stop the control plane, its gateway and every deployment (they restart, as declared, on the next start)."""
    from scorehost.deploy.controlplane.daemon import stop_control_plane

    click.echo("stopped" if stop_control_plane(workspace_of(home)) else "the control plane was not running")


@controlplane_group.command("status")
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_command(home: Path | None, as_json: bool) -> None:
    """Say whether the control plane runs, and where; exit 1 if it does not."""
    from scorehost.deploy.controlplane.daemon import control_plane_status

    status = control_plane_status(workspace_of(home))
    if as_json:
        click.echo(json.dumps(status))
    elif status["running"]:
        click.echo(f"running: API {status['api']}, gateway {status['gateway']} (workspace {status['workspace']})")
    else:
        click.echo(f"not running (workspace {status['workspace']}); `scorehost controlplane start`")
    sys.exit(0 if status["running"] else 1)


@controlplane_group.command("run", hidden=True)
@home_option
@click.option("--host", default="127.0.0.1")
@click.option("--api-port", default=5100, type=click.IntRange(0, 65535))
@click.option("--gateway-port", default=5080, type=click.IntRange(1, 65535))
@click.option("--otlp-endpoint", metavar="URL")
def run_command(home: Path | None, host: str, api_port: int, gateway_port: int, otlp_endpoint: str | None) -> None:
    """Run the control plane in the foreground (what `start` runs detached)."""
    from scorehost.deploy.controlplane.daemon import run_control_plane

    sys.exit(run_control_plane(workspace_of(home), host, api_port, gateway_port, otlp_endpoint=otlp_endpoint))
