"""`scorehost endpoints`, `scorehost deployments` and `scorehost invoke`: the control plane from a shell.

Each command starts the workspace's control plane when none runs, then talks to it with
`scorehost.Client`; failures print one line naming the fix (exit 1).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scorehost.cli.controlplane import home_option, workspace_of
from scorehost.cli.output import echo_json, new_table, print_renderable
from scorehost.cli.placement import placement_options, ray_options

if TYPE_CHECKING:
    from scorehost.client import Client

__all__ = ["deployments_group", "endpoints_group", "invoke_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scorehost.errors import ScorehostError

        try:
            return command(*args, **kwargs)
        except ScorehostError as error:
            raise click.ClickException(error.message) from None

    return wrapper  # type: ignore[return-value]


def _show_table(columns: list[str], rows: list[list[str]]) -> None:
    shown = new_table(*columns)
    for row in rows:
        shown.add_row(*row)
    print_renderable(shown)


def _client(home: Path | None) -> Client:
    from scorehost.client import Client
    from scorehost.deploy.controlplane.daemon import start_control_plane

    return Client(address=start_control_plane(workspace_of(home)))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


# -- endpoints -----------------------------------------------------------------------------------------


@click.group("endpoints")
def endpoints_group() -> None:
    """Stable scoring URIs with keys, routing traffic to deployments."""


@endpoints_group.command("create")
@click.argument("name")
@click.option("--auth", type=click.Choice(["key", "none"]), default="key", show_default=True, help="Callers' auth.")
@click.option("--description", "-d", default="", help="What the endpoint is for.")
@home_option
@json_option
@_errors
def create_endpoint(name: str, auth: str, description: str, home: Path | None, as_json: bool) -> None:
    """Create endpoint NAME (3-32 letters, digits, '-'); its scoring URI never changes."""
    with _client(home) as client:
        endpoint = client.create_endpoint(name, auth=auth, description=description)
    if as_json:
        echo_json(endpoint)
    else:
        click.echo(f"created {name}: {endpoint['scoring_uri']}")
        if auth == "key":
            click.echo(f"keys: `scorehost endpoints keys {name}`")


@endpoints_group.command("list")
@home_option
@json_option
@_errors
def list_endpoints(home: Path | None, as_json: bool) -> None:
    """List endpoints with their traffic."""
    with _client(home) as client:
        endpoints = client.list_endpoints()
    if as_json:
        echo_json(endpoints)
        return
    rows = [
        [e["name"], e["auth"], " ".join(f"{d}={p}" for d, p in e["traffic"].items()) or "-", e["scoring_uri"]]
        for e in endpoints
    ]
    _show_table(["NAME", "AUTH", "TRAFFIC", "SCORING URI"], rows)


@endpoints_group.command("show")
@click.argument("name")
@home_option
@json_option
@_errors
def show_endpoint(name: str, home: Path | None, as_json: bool) -> None:
    """Show endpoint NAME: URIs, traffic, and each deployment's state."""
    with _client(home) as client:
        endpoint = client.get_endpoint(name)
    if as_json:
        echo_json(endpoint)
        return
    click.echo(f"{endpoint['name']} ({endpoint['auth']} auth)")
    click.echo(f"  scoring URI  {endpoint['scoring_uri']}")
    click.echo(f"  swagger URI  {endpoint['swagger_uri']}")
    rows = [
        [
            d["name"],
            str(endpoint["traffic"].get(d["name"], 0)),
            _generations(d),
            d["status"].get("state", "?"),
            ",".join(d["models"]) or "-",
            _error(d),
        ]
        for d in endpoint.get("deployments", [])
    ]
    if rows:
        click.echo("")
        _show_table(["DEPLOYMENT", "TRAFFIC %", "GENERATION", "STATE", "MODELS", "ERROR"], rows)


def _generations(deployment: dict[str, Any]) -> str:
    """`2`, or `2 (serving 1)` while the declared generation is not the one that serves."""
    declared = deployment["generation"]
    serving = deployment.get("status", {}).get("serving_generation", deployment.get("serving_generation"))
    return str(declared) if serving in (None, declared) else f"{declared} (serving {serving})"


def _error(deployment: dict[str, Any]) -> str:
    """Why the declared generation cannot start: as the controller says now, else as last recorded."""
    error = str(deployment["status"].get("error") or deployment.get("failure") or "")
    return error.splitlines()[0] if error else ""  # the log lines that follow: `deployments show`


@endpoints_group.command("delete")
@click.argument("name")
@home_option
@_errors
def delete_endpoint(name: str, home: Path | None) -> None:
    """Delete endpoint NAME and stop its deployments."""
    with _client(home) as client:
        client.delete_endpoint(name)
    click.echo(f"deleted {name}")


@endpoints_group.command("keys")
@click.argument("name")
@click.option("--regenerate", type=click.Choice(["primary", "secondary"]), help="Replace this key; the other stays.")
@home_option
@json_option
@_errors
def endpoint_keys(name: str, regenerate: str | None, home: Path | None, as_json: bool) -> None:
    """Print NAME's keys (send one as `Authorization: Bearer KEY`)."""
    with _client(home) as client:
        keys = client.regenerate_key(name, regenerate) if regenerate else client.keys(name)
    if as_json:
        echo_json(keys)
    else:
        click.echo(f"primary    {keys['primary']}\nsecondary  {keys['secondary']}")


@endpoints_group.command("traffic")
@click.argument("name")
@click.argument("split", nargs=-1, required=True)
@click.option("--mirror", help="DEPLOYMENT=PERCENT: copies of requests go there too; answers are discarded.")
@home_option
@_errors
def endpoint_traffic(name: str, split: tuple[str, ...], mirror: str | None, home: Path | None) -> None:
    """Split NAME's traffic: `scorehost endpoints traffic mnist blue=90 green=10` (summing to 100)."""
    from scorehost.deploy.spec import Traffic

    parsed = Traffic.parse(list(split))
    mirror_name, mirror_percent = None, 0
    if mirror:
        mirror_name, sep, percent = mirror.partition("=")
        if not sep or not percent.isdigit():
            raise click.BadParameter(f"{mirror!r} is not DEPLOYMENT=PERCENT", param_hint="--mirror")
        mirror_percent = int(percent)
    with _client(home) as client:
        endpoint = client.set_traffic(name, parsed.split, mirror=mirror_name, mirror_percent=mirror_percent)
    click.echo(" ".join(f"{d}={p}" for d, p in endpoint["traffic"].items()))


# -- deployments ---------------------------------------------------------------------------------------


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
@_errors
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
    with _client(home) as client:
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
@_errors
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
    with _client(home) as client:
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
@_errors
def list_deployments(endpoint: str, home: Path | None, as_json: bool) -> None:
    """List ENDPOINT's deployments with their state."""
    with _client(home) as client:
        deployments = client.list_deployments(endpoint)
    if as_json:
        echo_json(deployments)
        return
    rows = [
        [
            d["name"],
            _generations(d),
            d["status"].get("state", "?"),
            d.get("backend", "local"),
            _scale(d),
            ",".join(d["models"]) or "-",
            _error(d),
        ]
        for d in deployments
    ]
    _show_table(["NAME", "GENERATION", "STATE", "BACKEND", "INSTANCES", "MODELS", "ERROR"], rows)


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
@_errors
def show_deployment(endpoint: str, name: str, home: Path | None) -> None:
    """Show deployment NAME: its declaration (`generation`), the generation that serves (`serving_generation`),
    why the declared one failed, if it did, and each instance's state (JSON)."""
    with _client(home) as client:
        echo_json(client.get_deployment(endpoint, name))


@deployments_group.command("logs")
@click.argument("endpoint")
@click.argument("name")
@click.option("--lines", "-n", default=100, show_default=True, type=click.IntRange(0, 100_000))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@home_option
@_errors
def deployment_logs(endpoint: str, name: str, lines: int, follow: bool, home: Path | None) -> None:
    """Print the last lines of deployment NAME's log."""
    with _client(home) as client:
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
@_errors
def delete_deployment(endpoint: str, name: str, home: Path | None) -> None:
    """Delete deployment NAME (move its traffic away first)."""
    with _client(home) as client:
        client.delete_deployment(endpoint, name)
    click.echo(f"deleted {endpoint}/{name}")


# -- invoke --------------------------------------------------------------------------------------------


@click.command("invoke")
@click.argument("endpoint")
@click.option("--data", help='JSON sent as {"data": DATA}.')
@click.option("--file", "request_file", type=click.File("rb"), help="A whole request body (JSON), or - for stdin.")
@click.option("--deployment", help="Send to this deployment, whatever the traffic split.")
@click.option("--key", help="The endpoint's key.  [default: read from the control plane]")
@home_option
@_errors
def invoke_command(
    endpoint: str, data: str | None, request_file: Any, deployment: str | None, key: str | None, home: Path | None
) -> None:
    """Score a request on ENDPOINT through the gateway and print the answer."""
    if (data is None) == (request_file is None):
        raise click.UsageError("give exactly one of --data JSON or --file FILE")
    try:
        value = json.loads(data if data is not None else request_file.read())
    except ValueError as error:
        raise click.UsageError(f"the request is not JSON: {error}") from None
    with _client(home) as client:
        if key is None and client.get_endpoint(endpoint)["auth"] == "key":
            key = client.keys(endpoint)["primary"]
        if data is not None:
            answer = client.invoke(endpoint, value, key=key, deployment=deployment)
        else:
            if not isinstance(value, dict):
                raise click.UsageError("--file must hold a JSON object (the whole request body)")
            answer = client.invoke(endpoint, body=value, key=key, deployment=deployment)
    click.echo(answer if isinstance(answer, str) else json.dumps(answer))
    sys.exit(0)
