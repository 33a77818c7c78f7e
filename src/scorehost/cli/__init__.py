"""The `scorehost` command."""

from __future__ import annotations

import click

from scorehost import __version__
from scorehost.cli.controlplane import controlplane_group
from scorehost.cli.deployment_data import data_command
from scorehost.cli.deployments import deployments_group
from scorehost.cli.endpoints import endpoints_group, invoke_command
from scorehost.cli.environments import environments_group
from scorehost.cli.gateway import gateway_command
from scorehost.cli.k8s import k8s_command
from scorehost.cli.models import models_group
from scorehost.cli.ray import ray_group
from scorehost.cli.serve import serve_command

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
cli.add_command(gateway_command)
cli.add_command(ray_group)
cli.add_command(k8s_command)


def main() -> None:
    """Entry point of the `scorehost` console script."""
    cli()
