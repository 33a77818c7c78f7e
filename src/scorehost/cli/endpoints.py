"""`scorehost endpoints` and `scorehost invoke`: endpoints from a shell.

Each command starts the workspace's control plane when none runs, then talks to it with
`scorehost.Client`; failures print one line naming the fix (exit 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from scorehost.cli.controlplane import home_option
from scorehost.cli.controlplane_client import cli_errors, client_of, json_option, show_table
from scorehost.cli.deployments import failure_text, generations_text
from scorehost.cli.output import echo_json

__all__ = ["endpoints_group", "invoke_command"]


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
@cli_errors
def create_endpoint(name: str, auth: str, description: str, home: Path | None, as_json: bool) -> None:
    """Create endpoint NAME (3-32 letters, digits, '-'); its scoring URI never changes."""
    with client_of(home) as client:
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
@cli_errors
def list_endpoints(home: Path | None, as_json: bool) -> None:
    """List endpoints with their traffic."""
    with client_of(home) as client:
        endpoints = client.list_endpoints()
    if as_json:
        echo_json(endpoints)
        return
    rows = [
        [e["name"], e["auth"], " ".join(f"{d}={p}" for d, p in e["traffic"].items()) or "-", e["scoring_uri"]]
        for e in endpoints
    ]
    show_table(["NAME", "AUTH", "TRAFFIC", "SCORING URI"], rows)


@endpoints_group.command("show")
@click.argument("name")
@home_option
@json_option
@cli_errors
def show_endpoint(name: str, home: Path | None, as_json: bool) -> None:
    """Show endpoint NAME: URIs, traffic, and each deployment's state."""
    with client_of(home) as client:
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
            generations_text(d),
            d["status"].get("state", "?"),
            ",".join(d["models"]) or "-",
            failure_text(d),
        ]
        for d in endpoint.get("deployments", [])
    ]
    if rows:
        click.echo("")
        show_table(["DEPLOYMENT", "TRAFFIC %", "GENERATION", "STATE", "MODELS", "ERROR"], rows)


@endpoints_group.command("delete")
@click.argument("name")
@home_option
@cli_errors
def delete_endpoint(name: str, home: Path | None) -> None:
    """Delete endpoint NAME and stop its deployments."""
    with client_of(home) as client:
        client.delete_endpoint(name)
    click.echo(f"deleted {name}")


@endpoints_group.command("keys")
@click.argument("name")
@click.option("--regenerate", type=click.Choice(["primary", "secondary"]), help="Replace this key; the other stays.")
@home_option
@json_option
@cli_errors
def endpoint_keys(name: str, regenerate: str | None, home: Path | None, as_json: bool) -> None:
    """Print NAME's keys (send one as `Authorization: Bearer KEY`)."""
    with client_of(home) as client:
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
@cli_errors
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
    with client_of(home) as client:
        endpoint = client.set_traffic(name, parsed.split, mirror=mirror_name, mirror_percent=mirror_percent)
    click.echo(" ".join(f"{d}={p}" for d, p in endpoint["traffic"].items()))


# -- invoke --------------------------------------------------------------------------------------------


@click.command("invoke")
@click.argument("endpoint")
@click.option("--data", help='JSON sent as {"data": DATA}.')
@click.option("--file", "request_file", type=click.File("rb"), help="A whole request body (JSON), or - for stdin.")
@click.option("--deployment", help="Send to this deployment, whatever the traffic split.")
@click.option("--key", help="The endpoint's key.  [default: read from the control plane]")
@home_option
@cli_errors
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
    with client_of(home) as client:
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
