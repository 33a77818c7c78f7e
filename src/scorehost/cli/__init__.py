"""The `scorehost` command."""

from __future__ import annotations

import click

from scorehost import __version__
from scorehost.cli.console import console_command
from scorehost.cli.controlplane import controlplane_group
from scorehost.cli.deployment_data import data_command
from scorehost.cli.deployments import deployments_group
from scorehost.cli.endpoints import endpoints_group, invoke_command
from scorehost.cli.environments import environments_group
from scorehost.cli.gateway import gateway_command
from scorehost.cli.help_text import examples
from scorehost.cli.k8s import k8s_command
from scorehost.cli.models import models_group
from scorehost.cli.ray import ray_group
from scorehost.cli.serve import serve_command

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=examples(
        "scorehost serve examples/digits/score.py",
        "scorehost models register digits examples/digits/model/model.joblib",
        "scorehost endpoints create digits",
        "scorehost deployments create digits blue --script examples/digits/score.py --model digits:1",
        "scorehost invoke digits --file examples/digits/sample-request.json",
        note="`scorehost COMMAND --help` shows each command's options and examples. Commands that keep state take "
        "--home DIR (before or after the subcommand) or SCOREHOST_HOME; every time in --json output is ISO 8601 "
        "UTC, e.g. 2026-12-07T14:03:11.437Z.",
    ),
)
@click.version_option(__version__, prog_name="scorehost")
def cli() -> None:
    """Serve Azure ML-style entry scripts (score.py with init() and run()) as fast web services."""


cli.add_command(serve_command)
cli.add_command(models_group)
cli.add_command(endpoints_group)
cli.add_command(deployments_group)
deployments_group.add_command(data_command)
cli.add_command(environments_group)
cli.add_command(invoke_command)
cli.add_command(controlplane_group)
cli.add_command(console_command)
cli.add_command(gateway_command)
cli.add_command(ray_group)
cli.add_command(k8s_command)


def main() -> None:
    """Entry point of the `scorehost` console script."""
    from scorehost.errors import WorkspaceDatabaseError

    try:
        cli()
    except WorkspaceDatabaseError as error:  # a command that did not expect it: still one line, not a traceback
        click.echo(f"Error: {error.message}", err=True)
        raise SystemExit(1) from None
