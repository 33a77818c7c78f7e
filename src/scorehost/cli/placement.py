"""Where a deployment runs: `--backend local|ray` and the Ray options of `scorehost deployments create/update`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["placement_options", "ray_options"]

F = TypeVar("F", bound=Callable[..., Any])

# (flag, RayOptions field, type, help)
_RAY_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--ray-address", "address", str, "HOST:PORT of the Ray cluster's head.  [default: $RAY_ADDRESS]"),
    ("--ray-ingress", "ingress", str, "http://HOST:PORT of Serve's ingress.  [default: the head's]"),
    ("--min-replicas", "min_replicas", click.IntRange(1, 1024), "Autoscale from this many replicas (with --max)."),
    ("--max-replicas", "max_replicas", click.IntRange(1, 1024), "Autoscale up to this many replicas."),
    (
        "--target-ongoing",
        "target_ongoing",
        click.FloatRange(0, min_open=True),
        "Ongoing requests per replica the autoscaler aims for.  [default: 2]",
    ),
    (
        "--upscale-delay",
        "upscale_delay_s",
        click.FloatRange(0, 86_400),
        "Seconds the load must call for more replicas before one is added.  [default: 10]",
    ),
    (
        "--downscale-delay",
        "downscale_delay_s",
        click.FloatRange(0, 86_400),
        "Seconds the load must call for fewer replicas before one is removed.  [default: 300]",
    ),
    ("--max-ongoing", "max_ongoing", click.IntRange(1), "Requests a replica takes at once.  [default: 8]"),
    (
        "--max-queued",
        "max_queued",
        click.IntRange(-1),
        "Requests queued for a replica before 503s; -1: no limit.  [default: 64]",
    ),
    ("--num-cpus", "num_cpus", click.FloatRange(0), "CPUs Ray reserves per replica.  [default: 1]"),
    (
        "--num-gpus",
        "num_gpus",
        click.FloatRange(0, 1024),
        "GPUs Ray reserves per replica; fractions share one GPU, e.g. 0.5.  [default: 0, or the -f file's]",
    ),
    (
        "--health-check-period",
        "health_check_s",
        click.FloatRange(0.1),
        "Seconds between health checks of each replica.  [default: 10]",
    ),
    (
        "--graceful-shutdown",
        "graceful_shutdown_s",
        click.FloatRange(0),
        "Seconds in-flight requests get when a replica stops.  [default: 20]",
    ),
    (
        "--ray-model-store",
        "model_store",
        str,
        "Where the nodes mount the workspace's model store.  [default: the same path]",
    ),
    (
        "--insecure-cluster",
        "insecure_cluster",
        bool,
        "Deploy even if the cluster checks no tokens (anyone who reaches it can run code on it): only on a "
        "network you control.  [default: refuse such a cluster]",
    ),
]


def placement_options(command: F) -> F:
    """`--backend` and the Ray options, in that order in --help."""
    for flag, field, kind, help_text in reversed(_RAY_FLAGS):
        # A flag (bool) is None when not given, like the others: an update keeps what the deployment had.
        kind_or_flag: dict[str, Any] = {"is_flag": True, "default": None} if kind is bool else {"type": kind}
        command = click.option(flag, f"ray_{field}", help=f"Ray: {help_text}", **kind_or_flag)(command)
    return click.option(
        "--backend",
        type=click.Choice(["local", "ray"]),
        help="local: `scorehost serve` processes here; ray: Ray Serve replicas on a cluster (pip install "
        "'scorehost[ray]').  [default: local, or as before on update]",
    )(command)


def ray_options(backend: str | None, flags: dict[str, Any], *, creating: bool) -> dict[str, Any] | None:
    """The API's `ray` object from the Ray flags given (pops them from `flags`); None when none apply."""
    given = {field: flags.pop(f"ray_{field}") for _, field, _, _ in _RAY_FLAGS}
    given = {field: value for field, value in given.items() if value is not None}
    if backend == "ray" and "address" not in given and os.environ.get("RAY_ADDRESS"):
        given["address"] = os.environ["RAY_ADDRESS"]
    if backend == "local" and given:
        flag = next(flag for flag, field, _, _ in _RAY_FLAGS if field in given)
        raise click.UsageError(f"{flag} is a Ray option: it needs --backend ray")
    if creating and given and backend != "ray":
        raise click.UsageError("Ray options (--ray-address, --min-replicas, ...) need --backend ray")
    if creating and backend == "ray" and "address" not in given:
        raise click.UsageError("--backend ray needs the cluster's address: --ray-address HOST:PORT (or RAY_ADDRESS)")
    return given or None
