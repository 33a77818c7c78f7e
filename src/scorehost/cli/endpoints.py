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

from scorehost.cli.controlplane_client import cli_errors, client_of, json_option, show_table
from scorehost.cli.generations import generation_text, problem_line
from scorehost.cli.help_text import examples
from scorehost.cli.output import echo_json
from scorehost.cli.project_options import echo_warnings, file_option, set_option
from scorehost.cli.workspace import group_home_option, home_option

__all__ = ["endpoints_group", "invoke_command"]


# -- endpoints -----------------------------------------------------------------------------------------


@click.group(
    "endpoints",
    epilog=examples(
        "scorehost endpoints create digits",
        "scorehost deployments create digits blue --script examples/digits/score.py",
        "scorehost invoke digits --file examples/digits/sample-request.json",
        "scorehost endpoints traffic digits blue=90 green=10",
        "scorehost endpoints show digits",
        note="The first command starts the control plane and its gateway in the background "
        "(`scorehost controlplane status` shows them).",
    ),
)
@group_home_option
def endpoints_group() -> None:
    """Stable scoring URIs with keys, routing traffic to deployments."""


def traffic_text(endpoint: dict[str, Any]) -> str:
    """`blue=90 green=10`, and the mirror: `blue=100, mirror green=10%`."""
    split = " ".join(f"{d}={p}" for d, p in endpoint["traffic"].items()) or "no traffic"
    mirror = endpoint.get("mirror")
    return f"{split}, mirror {mirror['deployment']}={mirror['percent']}%" if mirror else split


_file_option = file_option("An Azure ML endpoint YAML (managedOnlineEndpoint); NAME then defaults to its name.")


def _endpoint_file(yaml_file: Path, overrides: tuple[str, ...], name: str | None) -> Any:
    from scorehost.azureml.endpoint import read_endpoint_file

    endpoint = read_endpoint_file(yaml_file, (*overrides, *([f"name={name}"] if name else [])))
    echo_warnings(endpoint.warnings)
    return endpoint


@endpoints_group.command(
    "create",
    epilog=examples(
        "scorehost endpoints create digits",
        'scorehost endpoints create open-digits --auth none --description "digits, no key"',
        "scorehost endpoints create -f endpoint.yml",
    ),
)
@click.argument("name", required=False)
@click.option("--auth", type=click.Choice(["key", "none"]), help="Callers' auth.  [default: key]")
@click.option("--description", "-d", help="What the endpoint is for.")
@_file_option
@set_option
@home_option
@json_option
@cli_errors
def create_endpoint(
    name: str | None,
    auth: str | None,
    description: str | None,
    yaml_file: Path | None,
    overrides: tuple[str, ...],
    home: Path | None,
    as_json: bool,
) -> None:
    """Create endpoint NAME (3-32 letters, digits, '-'); its scoring URI never changes.

    With -f endpoint.yml, from an Azure ML endpoint file: auth_mode key (aml_token and aad_token become keys, with
    a warning), description and tags; its traffic is set by `endpoints update -f` once the deployments exist.
    """
    tags: dict[str, str] = {}
    if yaml_file is not None:
        if auth is not None or description is not None:
            raise click.UsageError("--auth and --description cannot be combined with -f: use --set auth_mode=...")
        declared = _endpoint_file(yaml_file, overrides, name)
        name, auth, description, tags = declared.name, declared.auth, declared.description, declared.tags
        if declared.traffic or declared.mirror:
            echo_warnings(
                [
                    f"{yaml_file.name}: traffic applies once the deployments exist (as on Azure ML): "
                    f"`scorehost endpoints update -f {yaml_file.name}` after `scorehost deployments create`"
                ]
            )
    elif overrides:
        raise click.UsageError("--set changes the fields of a -f file; give -f endpoint.yml")
    if name is None:
        raise click.UsageError("give NAME (or -f endpoint.yml)")
    with client_of(home) as client:
        endpoint = client.create_endpoint(name, auth=auth or "key", description=description or "", tags=tags)
    if as_json:
        echo_json(endpoint)
    else:
        click.echo(f"created {name}: {endpoint['scoring_uri']}")
        if endpoint["auth"] == "key":
            click.echo(f"keys: `scorehost endpoints keys {name}`")


@endpoints_group.command(
    "update",
    epilog=examples(
        "scorehost endpoints update -f endpoint.yml",
        "scorehost endpoints update -f endpoint.yml --set traffic.blue=100",
    ),
)
@click.argument("name", required=False)
@_file_option
@set_option
@home_option
@json_option
@cli_errors
def update_endpoint(
    name: str | None, yaml_file: Path | None, overrides: tuple[str, ...], home: Path | None, as_json: bool
) -> None:
    """Apply an endpoint YAML (-f) to endpoint NAME: description, tags, traffic and mirror_traffic.

    Its auth_mode cannot change (as on Azure ML): delete and create the endpoint for that.
    """
    if yaml_file is None:
        raise click.UsageError("give -f endpoint.yml (traffic alone: `scorehost endpoints traffic`)")
    declared = _endpoint_file(yaml_file, overrides, name)
    with client_of(home) as client:
        current = client.get_endpoint(declared.name)
        if current["auth"] != declared.auth:
            raise click.ClickException(
                f"{declared.name} has auth {current['auth']}, the file says {declared.auth}: auth cannot change; "
                "delete the endpoint and create it again"
            )
        endpoint = client.describe_endpoint(declared.name, description=declared.description, tags=declared.tags)
        if declared.traffic or declared.mirror:
            mirror, percent = declared.mirror or (None, 0)
            traffic = declared.traffic or dict(current["traffic"])
            endpoint = client.set_traffic(declared.name, traffic, mirror=mirror, mirror_percent=percent)
    if as_json:
        echo_json(endpoint)
    else:
        click.echo(f"updated {declared.name}: {traffic_text(endpoint)}")


@endpoints_group.command("list", epilog=examples("scorehost endpoints list", "scorehost endpoints list --json"))
@home_option
@json_option
@cli_errors
def list_endpoints(home: Path | None, as_json: bool) -> None:
    """List endpoints with their traffic and mirror."""
    with client_of(home) as client:
        endpoints = client.list_endpoints()
    if as_json:
        echo_json(endpoints)
        return
    if not endpoints:
        click.echo("no endpoints; create one with `scorehost endpoints create NAME`", err=True)
        return
    rows = [[e["name"], e["auth"], traffic_text(e), e["scoring_uri"]] for e in endpoints]
    show_table(["NAME", "AUTH", "TRAFFIC", "SCORING URI"], rows)


@endpoints_group.command(
    "show", epilog=examples("scorehost endpoints show digits", "scorehost endpoints show digits --json")
)
@click.argument("name")
@home_option
@json_option
@cli_errors
def show_endpoint(name: str, home: Path | None, as_json: bool) -> None:
    """Show endpoint NAME: its URIs, traffic and mirror, and each deployment's state with the generation that
    serves; a generation that failed to start is named, with why, under the table."""
    with client_of(home) as client:
        endpoint = client.get_endpoint(name)
    if as_json:
        echo_json(endpoint)
        return
    mirror = endpoint.get("mirror")
    facts = [
        ("scoring URI", endpoint["scoring_uri"]),
        ("swagger URI", endpoint["swagger_uri"]),
        ("docs URI", endpoint["docs_uri"]),
        ("mirror", f"{mirror['percent']}% of requests copied to {mirror['deployment']}" if mirror else "none"),
        ("created", endpoint["created_at"]),
    ]
    described = f": {endpoint['description']}" if endpoint.get("description") else ""
    click.echo(f"{endpoint['name']} ({endpoint['auth']} auth){described}")
    for label, value in facts:
        click.echo(f"  {label:<12} {value}")
    deployments = endpoint.get("deployments", [])
    if not deployments:
        click.echo(f"\nno deployments; `scorehost deployments create {name} NAME --script score.py`")
        return
    rows = [
        [
            d["name"],
            str(endpoint["traffic"].get(d["name"], 0)),
            generation_text(d),
            d["status"].get("state", "?"),
            d.get("backend", "local"),
            ",".join(d["models"]) or "-",
        ]
        for d in deployments
    ]
    click.echo("")
    show_table(["DEPLOYMENT", "TRAFFIC %", "SERVING", "STATE", "BACKEND", "MODELS"], rows)
    problems = [line for d in deployments if (line := problem_line(name, d)) is not None]
    if problems:
        click.echo("")
        for line in problems:
            click.echo(line)


@endpoints_group.command("delete", epilog=examples("scorehost endpoints delete digits"))
@click.argument("name")
@home_option
@cli_errors
def delete_endpoint(name: str, home: Path | None) -> None:
    """Delete endpoint NAME and stop its deployments."""
    with client_of(home) as client:
        client.delete_endpoint(name)
    click.echo(f"deleted {name}")


@endpoints_group.command(
    "keys",
    epilog=examples(
        "scorehost endpoints keys digits",
        "scorehost endpoints keys digits --regenerate secondary",
        "KEY=$(scorehost endpoints keys digits --json | jq -r .primary)",
    ),
)
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


@endpoints_group.command(
    "traffic",
    epilog=examples(
        "scorehost endpoints traffic digits blue=90 green=10",
        "scorehost endpoints traffic digits blue=100 --mirror green=10",
        "scorehost endpoints traffic digits green=100",
    ),
)
@click.argument("name")
@click.argument("split", nargs=-1, required=True, metavar="DEPLOYMENT=PERCENT...")
@click.option(
    "--mirror",
    metavar="DEPLOYMENT=PERCENT",
    help="Also send a copy of PERCENT of the requests to DEPLOYMENT (its answers are discarded); left out, "
    "mirroring stops.",
)
@home_option
@cli_errors
def endpoint_traffic(name: str, split: tuple[str, ...], mirror: str | None, home: Path | None) -> None:
    """Split endpoint NAME's traffic between its deployments (percentages summing to 100), and mirror some."""
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
    click.echo(f"{name}: {traffic_text(endpoint)}")


# -- invoke --------------------------------------------------------------------------------------------


@click.command(
    "invoke",
    epilog=examples(
        "scorehost invoke digits --file examples/digits/sample-request.json",
        'scorehost invoke digits --data "$(jq -c .data examples/digits/sample-request.json)"',
        "scorehost invoke digits --file - --deployment green < request.json",
    ),
)
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
