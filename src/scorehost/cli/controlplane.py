"""`scorehost controlplane start|stop|status`: the process behind endpoints and deployments."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from scorehost.cli.help_text import examples
from scorehost.cli.workspace import group_home_option, home_option, workspace_of
from scorehost.config import ControlPlaneSettings

__all__ = ["controlplane_group"]


log_options = [
    click.option(
        "--log-max-size",
        metavar="SIZE",
        help="Rotate controlplane.log and gateway.log past this size, e.g. 10MiB "
        "(SCOREHOST_CONTROLPLANE_LOG_MAX_SIZE).  [default: 10MiB]",
    ),
    click.option(
        "--log-backups",
        type=click.IntRange(1, 100),
        help="Rotated files kept of each log (SCOREHOST_CONTROLPLANE_LOG_BACKUPS).  [default: 5]",
    ),
]


def _settings(log_max_size: str | None, log_backups: int | None) -> ControlPlaneSettings:
    from pydantic import ValidationError

    given = {name: value for name, value in (("log_max_size", log_max_size), ("log_backups", log_backups)) if value}
    try:
        return ControlPlaneSettings(**given)  # type: ignore[arg-type]
    except ValidationError as error:
        problem = error.errors()[0]
        flag = "--" + str(problem["loc"][0]).replace("_", "-")
        raise click.BadParameter(str(problem["msg"]), param_hint=flag) from None


_API_PORT_HELP = "TCP port of the control plane's REST API (/api/v1, /openapi.json); 0 picks a free one."
_GATEWAY_PORT_HELP = "TCP port of the gateway: every endpoint's scoring URI, /endpoints/NAME/score."


@click.group(
    "controlplane",
    epilog=examples(
        "scorehost controlplane start --gateway-port 8080",
        "scorehost controlplane status",
        "scorehost controlplane stop",
        note="The control plane keeps endpoints and deployments running and serves the API their commands use; "
        "the gateway it starts serves every endpoint's scoring URI. `scorehost endpoints ...` starts both when "
        "they are not running.",
    ),
)
@group_home_option
def controlplane_group() -> None:
    """Start, stop or check the control plane (the endpoints commands start it when needed)."""


@controlplane_group.command(
    "start",
    epilog=examples(
        "scorehost controlplane start",
        "scorehost controlplane start --host 0.0.0.0 --gateway-port 8080 --log-max-size 50MiB",
        "scorehost controlplane start --home ./workspace --api-port 0 --gateway-port 5081",
    ),
)
@home_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for the API and the gateway.")
@click.option("--api-port", default=5100, show_default=True, type=click.IntRange(0, 65535), help=_API_PORT_HELP)
@click.option("--gateway-port", default=5080, show_default=True, type=click.IntRange(1, 65535), help=_GATEWAY_PORT_HELP)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="The gateway it starts sends its span of each request it forwards to this OTLP/HTTP traces URL, e.g. "
    "http://127.0.0.1:4318/v1/traces; needs pip install 'scorehost[otel]'. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
    "in the environment does the same, and the deployments' servers then send theirs too.  [default: none]",
)
@log_options[0]
@log_options[1]
def start_command(
    home: Path | None,
    host: str,
    api_port: int,
    gateway_port: int,
    otlp_endpoint: str | None,
    log_max_size: str | None,
    log_backups: int | None,
) -> None:
    """Start the control plane in the background (nothing happens if it runs already)."""
    from scorehost.deploy.controlplane.daemon import start_control_plane
    from scorehost.errors import ScorehostError

    settings = _settings(log_max_size, log_backups)
    try:
        address = start_control_plane(
            workspace_of(home),
            host=host,
            api_port=api_port,
            gateway_port=gateway_port,
            otlp_endpoint=otlp_endpoint,
            settings=settings,
        )
    except ScorehostError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"control plane: {address.api}  gateway: {address.gateway}")
    click.echo(f"console: {address.api}/console/  (`scorehost console` signs you in)")


@controlplane_group.command("stop", epilog=examples("scorehost controlplane stop"))
@home_option
def stop_command(home: Path | None) -> None:
    """Stop the control plane, its gateway and every deployment (they restart, as declared, on the next start)."""
    from scorehost.deploy.controlplane.daemon import stop_control_plane

    click.echo("stopped" if stop_control_plane(workspace_of(home)) else "the control plane was not running")


@controlplane_group.command(
    "status", epilog=examples("scorehost controlplane status", "scorehost controlplane status --json | jq .processes")
)
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (times: ISO 8601 UTC).")
def status_command(home: Path | None, as_json: bool) -> None:
    """Say what runs: the control plane, its gateway and each deployment's processes (pid, state, restarts,
    last cause); exit 1 unless the control plane and its gateway both run."""
    from scorehost.deploy.controlplane.daemon import control_plane_status

    status = control_plane_status(workspace_of(home))
    if as_json:
        click.echo(json.dumps(status))
    elif status["running"]:
        click.echo(f"running: API {status['api']}, gateway {status['gateway']} (workspace {status['workspace']})")
        _print_processes(status)
    else:
        click.echo(f"not running (workspace {status['workspace']}); `scorehost controlplane start`")
        _print_processes(status)
    sys.exit(0 if status["healthy"] else 1)


def _print_processes(status: dict[str, Any]) -> None:
    processes = status.get("processes") or {}
    rows = []
    for name in ("control_plane", "gateway"):
        process = processes.get(name) or {}
        if process.get("pid"):
            rows.append([name.replace("_", " "), *_process_row(process)])
    for deployment in processes.get("deployments", []):
        what = f"{deployment['endpoint']}/{deployment['deployment']} gen {deployment['generation']}"
        what += " (serving)" if deployment.get("serving") else ""
        for instance in deployment.get("instances", []):
            rows.append([what, *_process_row(instance)])
    if rows:
        from scorehost.cli.output import new_table, print_renderable

        table = new_table("PROCESS", "PID", "STATE", "RESTARTS", "LAST CAUSE")
        for row in rows:
            table.add_row(*row)
        print_renderable(table)


def _process_row(process: dict[str, Any]) -> list[str]:
    state = str(process.get("state", "?"))
    if process.get("alive") is False and state not in ("stopped", "failed", "restarting"):
        state += " (not alive)"
    return [str(process.get("pid") or "-"), state, str(process.get("restarts", 0)), process.get("last_error") or ""]


@controlplane_group.command("run", hidden=True, epilog=examples("scorehost controlplane run --api-port 0"))
@home_option
@click.option("--host", default="127.0.0.1", help="Interface for the API and the gateway.")
@click.option("--api-port", default=5100, type=click.IntRange(0, 65535), help=_API_PORT_HELP)
@click.option("--gateway-port", default=5080, type=click.IntRange(1, 65535), help=_GATEWAY_PORT_HELP)
@click.option("--otlp-endpoint", metavar="URL", help="As for `scorehost controlplane start`.")
@click.option("--log-file", is_flag=True, help="Log to the rotated controlplane.log instead of stderr.")
@log_options[0]
@log_options[1]
def run_command(
    home: Path | None,
    host: str,
    api_port: int,
    gateway_port: int,
    otlp_endpoint: str | None,
    log_file: bool,
    log_max_size: str | None,
    log_backups: int | None,
) -> None:
    """Run the control plane in the foreground (what `start` runs detached)."""
    from scorehost.deploy.controlplane.daemon import run_control_plane

    settings = _settings(log_max_size, log_backups)
    code = run_control_plane(
        workspace_of(home),
        host,
        api_port,
        gateway_port,
        otlp_endpoint=otlp_endpoint,
        settings=settings,
        log_to_file=log_file,
    )
    sys.exit(code)
