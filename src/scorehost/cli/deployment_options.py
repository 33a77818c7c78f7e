"""The options of `scorehost deployments create` and `update`, in the order and under the headings --help shows
them: what it runs first, the Azure ML file, waiting and output, data collection, and the Ray backend last."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from scorehost.cli.collect_options import collect_options
from scorehost.cli.controlplane_client import json_option
from scorehost.cli.placement import placement_options
from scorehost.cli.project_options import file_option, set_option
from scorehost.cli.workspace import home_option

__all__ = ["SECTIONS", "declaring_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _deployment_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--script", type=click.Path(path_type=Path), help="The entry script (score.py)."),
            click.option(
                "--code-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Folder with the script and its code (its working directory).  [default: the script's folder]",
            ),
            click.option(
                "--model",
                "models",
                multiple=True,
                help="NAME[:VERSION|:ALIAS] from the registry, found through AZUREML_MODEL_DIR (repeatable).",
            ),
            click.option(
                "--instances",
                type=click.IntRange(1, 1024),
                help="Worker processes (local, up to 64), or replicas (ray, without --min/--max-replicas).",
            ),
            click.option(
                "--devices",
                metavar="auto|none|0,1,...",
                help="GPUs its workers spread over, one each in turn (local backend, as `scorehost serve --devices`; "
                "on Ray: --num-gpus).  [default: auto]",
            ),
            click.option(
                "--follow-model/--no-follow-model",
                default=None,
                help="Roll to the version a --model label (NAME:ALIAS, NAME:latest) names whenever it moves.",
            ),
            click.option("--env", "environment", multiple=True, help="NAME=VALUE for the script (repeatable)."),
        ]
    ):
        command = option(command)
    return command


def _waiting_options(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--wait/--no-wait",
                default=True,
                help="Wait until ready, showing the instances and the log as they start.  [default: wait]",
            ),
            click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for ready."),
            click.option(
                "--all-traffic",
                is_flag=True,
                help="Once ready, send all of the endpoint's traffic to it (implies --wait).",
            ),
        ]
    ):
        command = option(command)
    return command


def _file_options(command: F) -> F:
    for option in reversed(
        [
            file_option(
                "An Azure ML deployment YAML (managedOnlineDeployment, kubernetesOnlineDeployment); its relative "
                "paths start from its folder. ENDPOINT and NAME then default to its endpoint_name and name."
            ),
            set_option,
            click.option(
                "--environment",
                "environment_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="A conda YAML or requirements.txt: the script runs in a Python environment built from it "
                "(cached: `scorehost environments list`).",
            ),
            click.option(
                "--nearest-python",
                is_flag=True,
                help="If the environment asks for a Python that is not installed, build it with the nearest one.",
            ),
        ]
    ):
        command = option(command)
    return command


SECTIONS = [
    ("Azure ML deployment YAML", ["yaml_file", "overrides"]),
    ("Data collection", ["collect*", "no_collect"]),
    ("Ray backend", ["backend", "ray_*"]),
]


def declaring_options(command: F) -> F:
    """The options of `create` and `update`, common ones first and the Ray ones last (--help shows them so)."""
    for decorate in reversed(
        [
            _deployment_options,
            _file_options,
            _waiting_options,
            home_option,
            json_option,
            collect_options,
            placement_options,
        ]
    ):
        command = decorate(command)
    return command
