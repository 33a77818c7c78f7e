"""`scorehost deployments`: versions of a scoring service behind an endpoint, from flags or from an Azure ML
deployment YAML file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scorehost.cli.controlplane import home_option
from scorehost.cli.controlplane_client import cli_errors, client_of, json_option, show_table
from scorehost.cli.output import echo_json
from scorehost.cli.placement import placement_options, ray_options

if TYPE_CHECKING:
    from scorehost.client import Client

__all__ = ["deployments_group", "failure_text", "generations_text"]

F = TypeVar("F", bound=Callable[..., Any])


@click.group("deployments")
def deployments_group() -> None:
    """Versions of a scoring service behind an endpoint: a script, its models, its instances."""


def _wait_ready(client: Client, endpoint: str, name: str, generation: int, timeout: float) -> dict[str, Any]:
    import time

    from rich.console import Console

    console = Console(stderr=True)
    deadline = time.monotonic() + timeout
    with console.status(f"starting {endpoint}/{name} (generation {generation})"):
        while True:
            deployment = client.get_deployment(endpoint, name)
            status = deployment["status"]
            if deployment["generation"] > generation:  # another update came after ours: we would wait forever
                raise click.ClickException(
                    f"{endpoint}/{name} generation {generation} was superseded by generation "
                    f"{deployment['generation']} (a later update); `scorehost deployments show {endpoint} {name}`"
                )
            current = status.get("serving_generation", status.get("generation", deployment["generation"]))
            if status.get("state") == "ready" and current == generation:
                return deployment
            if status.get("error") and (status.get("state") == "failed" or current != generation):
                raise click.ClickException(f"{endpoint}/{name} generation {generation} failed: {status['error']}")
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{endpoint}/{name} is not ready after {timeout:.0f} s (state {status.get('state')}); "
                    f"`scorehost deployments logs {endpoint} {name}` shows why"
                )
            time.sleep(0.25)


def _deployment_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--script", type=click.Path(path_type=Path), help="The entry script (score.py)."),
            click.option(
                "--code-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder with the script."
            ),
            click.option("--model", "models", multiple=True, help="NAME[:VERSION|:ALIAS] from the registry."),
            click.option(
                "--instances",
                type=click.IntRange(1, 1024),
                help="Worker processes (local, up to 64), or replicas (ray, without --min/--max-replicas).",
            ),
            click.option("--env", "environment", multiple=True, help="NAME=VALUE for the script (repeatable)."),
            click.option("--wait/--no-wait", default=True, help="Wait until ready.  [default: wait]"),
            click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for ready."),
        ]
    ):
        command = option(command)
    return placement_options(command)


def _environment(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        found[key] = value
    return found


@deployments_group.command("create")
@click.argument("endpoint")
@click.argument("name")
@_deployment_options
@home_option
@cli_errors
def create_deployment(
    endpoint: str,
    name: str,
    script: Path | None,
    code_dir: Path | None,
    models: tuple[str, ...],
    instances: int | None,
    environment: tuple[str, ...],
    wait: bool,
    timeout: float,
    home: Path | None,
    backend: str | None,
    **ray_flags: Any,
) -> None:
    """Create deployment NAME behind ENDPOINT and start it (the first deployment gets 100% of the traffic).

    With --backend ray it runs as Ray Serve replicas on the cluster at --ray-address; the script, its folder
    and the model store must be at the same paths on every node (docs/ray.md).
    """
    ray = ray_options(backend, ray_flags, creating=True)
    if script is None:
        raise click.UsageError("--script is required")
    folder = code_dir or script.parent
    relative = script.resolve().relative_to(folder.resolve()) if script.is_absolute() or code_dir else script.name
    with client_of(home) as client:
        created = client.create_deployment(
            endpoint,
            name,
            script=relative,
            code_dir=folder,
            models=models,
            instances=instances or 1,
            environment=_environment(environment),
            backend=backend or "local",
            ray=ray,
        )
        if wait:
            created = _wait_ready(client, endpoint, name, created["generation"], timeout)
    click.echo(f"{endpoint}/{name} generation {created['generation']}: {created['status'].get('state')}")


@deployments_group.command("update")
@click.argument("endpoint")
@click.argument("name")
@_deployment_options
@home_option
@cli_errors
def update_deployment(
    endpoint: str,
    name: str,
    script: Path | None,
    code_dir: Path | None,
    models: tuple[str, ...],
    instances: int | None,
    environment: tuple[str, ...],
    wait: bool,
    timeout: float,
    home: Path | None,
    backend: str | None,
    **ray_flags: Any,
) -> None:
    """Change deployment NAME with no downtime: the new generation starts, then takes over, then the old stops.

    Options not given keep their values; --backend moves the deployment between local processes and Ray.
    """
    ray = ray_options(backend, ray_flags, creating=False)
    with client_of(home) as client:
        updated = client.update_deployment(
            endpoint,
            name,
            script=script,
            code_dir=code_dir,
            models=models or None,
            instances=instances,
            environment=_environment(environment),
            backend=backend,
            ray=ray,
        )
        if wait:
            updated = _wait_ready(client, endpoint, name, updated["generation"], timeout)
    click.echo(f"{endpoint}/{name} generation {updated['generation']}: {updated['status'].get('state')}")


@deployments_group.command("list")
@click.argument("endpoint")
@home_option
@json_option
@cli_errors
def list_deployments(endpoint: str, home: Path | None, as_json: bool) -> None:
    """List ENDPOINT's deployments with their state."""
    with client_of(home) as client:
        deployments = client.list_deployments(endpoint)
    if as_json:
        echo_json(deployments)
        return
    rows = [
        [
            d["name"],
            generations_text(d),
            d["status"].get("state", "?"),
            d.get("backend", "local"),
            _scale(d),
            ",".join(d["models"]) or "-",
            failure_text(d),
        ]
        for d in deployments
    ]
    show_table(["NAME", "GENERATION", "STATE", "BACKEND", "INSTANCES", "MODELS", "ERROR"], rows)


def _scale(deployment: dict[str, Any]) -> str:
    """`2`, or `1-8` for an autoscaled Ray deployment."""
    ray = deployment.get("ray") or {}
    if ray.get("min_replicas") is not None:
        return f"{ray['min_replicas']}-{ray['max_replicas']}"
    return str(deployment["instances"])


@deployments_group.command("show")
@click.argument("endpoint")
@click.argument("name")
@home_option
@cli_errors
def show_deployment(endpoint: str, name: str, home: Path | None) -> None:
    """Show deployment NAME: its declaration (`generation`), the generation that serves (`serving_generation`),
    why the declared one failed, if it did, and each instance's state (JSON)."""
    with client_of(home) as client:
        echo_json(client.get_deployment(endpoint, name))


@deployments_group.command("logs")
@click.argument("endpoint")
@click.argument("name")
@click.option("--lines", "-n", default=100, show_default=True, type=click.IntRange(0, 100_000))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@home_option
@cli_errors
def deployment_logs(endpoint: str, name: str, lines: int, follow: bool, home: Path | None) -> None:
    """Print the last lines of deployment NAME's log."""
    with client_of(home) as client:
        if not follow:
            click.echo(client.logs(endpoint, name, lines=lines), nl=False)
            return
        try:
            for line in client.follow_logs(endpoint, name, lines=lines):
                click.echo(line)
        except KeyboardInterrupt:
            pass


@deployments_group.command("delete")
@click.argument("endpoint")
@click.argument("name")
@home_option
@cli_errors
def delete_deployment(endpoint: str, name: str, home: Path | None) -> None:
    """Delete deployment NAME (move its traffic away first)."""
    with client_of(home) as client:
        client.delete_deployment(endpoint, name)
    click.echo(f"deleted {endpoint}/{name}")


def generations_text(deployment: dict[str, Any]) -> str:
    """`2`, or `2 (serving 1)` while the declared generation is not the one that serves."""
    declared = deployment["generation"]
    serving = deployment.get("status", {}).get("serving_generation", deployment.get("serving_generation"))
    return str(declared) if serving in (None, declared) else f"{declared} (serving {serving})"


def failure_text(deployment: dict[str, Any]) -> str:
    """Why the declared generation cannot start: as the controller says now, else as last recorded."""
    error = str(deployment["status"].get("error") or deployment.get("failure") or "")
    return error.splitlines()[0] if error else ""  # the log lines that follow: `deployments show`
