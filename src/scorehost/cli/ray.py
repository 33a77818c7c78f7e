"""`scorehost ray config`: a Ray Serve config file for an entry script (for `serve run` and KubeRay)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

__all__ = ["ray_group"]

_HEADER = """\
# Ray Serve config for {script}, written by `scorehost ray config`.
# Every node needs `pip install 'scorehost[ray]'`, and Ray started with the high-throughput mode on:
#   export RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_THROUGHPUT_OPTIMIZED=1
#   ray start --head ...            (then: ray start --address=HEAD:6379 on the other machines)
#   serve run --address HEAD:6379 --non-blocking this-file.yaml
# or paste `applications` into a KubeRay RayService's serveConfigV2. See docs/ray.md.
# {where}
"""


@click.group("ray")
def ray_group() -> None:
    """Run entry scripts on a Ray Serve cluster (pip install 'scorehost[ray]')."""


@ray_group.command("config", epilog="See docs/ray.md for running the file and for what each setting does.")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--working-dir-uri",
    help="Where the nodes fetch the code: a zip at a remote URI (s3://bucket/code.zip, https://...) or "
    "local://PATH present on every node. Without it, SCRIPT's absolute path must exist on every node.",
)
@click.option(
    "--working-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="With --working-dir-uri: the folder that URI holds, so SCRIPT is named relative to it.  "
    "[default: SCRIPT's folder]",
)
@click.option("--model-dir", help="AZUREML_MODEL_DIR on the replicas: a path on every node, or inside the working dir.")
@click.option("--name", default="score", show_default=True, help="The Serve application's name.")
@click.option("--route-prefix", default="/", show_default=True, help="Where the app's routes start.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Serve's HTTP host; 0.0.0.0 to be reached.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Serve's HTTP port.")
@click.option("--replicas", type=click.IntRange(min=1), help="A fixed number of replicas (no autoscaling).")
@click.option("--min-replicas", default=1, show_default=True, type=click.IntRange(min=0), help="Autoscaling floor.")
@click.option("--max-replicas", default=4, show_default=True, type=click.IntRange(min=1), help="Autoscaling ceiling.")
@click.option(
    "--target-ongoing",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Requests in progress per replica that autoscaling aims at.",
)
@click.option("--max-ongoing", default=8, show_default=True, type=click.IntRange(min=1), help="Per replica.")
@click.option(
    "--max-queued", default=64, show_default=True, type=click.IntRange(min=-1), help="Waiting beyond that get 503."
)
@click.option("--request-timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--num-cpus", default=1.0, show_default=True, type=click.FloatRange(min=0), help="CPUs per replica.")
@click.option("--run-input", type=click.Choice(["auto", "data", "body"]), help="As for `scorehost serve`.")
@click.option("--threads", type=click.IntRange(1, 256), help="Concurrent run() calls per replica.")
def ray_config_command(script: Path, **options: Any) -> None:
    """Print a Serve config file that runs SCRIPT on a Ray cluster."""
    import yaml

    from scorehost.ray.config import ServeConfig

    if options["replicas"] is None and options["min_replicas"] > options["max_replicas"]:
        raise click.UsageError("--min-replicas must not exceed --max-replicas.")
    entry = str(script.resolve())
    if options["working_dir_uri"]:
        working_dir = (options["working_dir"] or script.parent).resolve()
        if working_dir not in script.resolve().parents:
            raise click.UsageError(f"{script} is not inside the working dir {working_dir}.")
        entry = os.path.relpath(script.resolve(), working_dir)
        where = f"The code comes from {options['working_dir_uri']}, holding {entry}."
    elif options["working_dir"]:
        raise click.UsageError("--working-dir names the folder that --working-dir-uri holds; give both.")
    else:
        where = f"{entry} (and --model-dir) must exist at these paths on every node: shared storage, or one image."
    app_options = {name: options[name] for name in ("model_dir", "run_input", "threads") if options[name] is not None}
    app_options["timeout"] = options["request_timeout"]
    config = ServeConfig(
        entry_script=entry,
        app_options=app_options,
        name=options["name"],
        route_prefix=options["route_prefix"],
        working_dir_uri=options["working_dir_uri"],
        host=options["host"],
        port=options["port"],
        replicas=options["replicas"],
        min_replicas=options["min_replicas"],
        max_replicas=options["max_replicas"],
        target_ongoing_requests=options["target_ongoing"],
        max_ongoing_requests=options["max_ongoing"],
        max_queued_requests=options["max_queued"],
        request_timeout_s=options["request_timeout"],
        num_cpus=options["num_cpus"],
    )
    header = _HEADER.format(script=script, where=where)
    click.echo(header + yaml.safe_dump(config.to_dict(), sort_keys=False), nl=False)
