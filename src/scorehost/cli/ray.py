"""`scorehost ray config`: a Ray Serve config file for an entry script (for `serve run` and KubeRay)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from scorehost.cli.help_text import examples
from scorehost.cli.project_options import file_option, set_option
from scorehost.ray.autoscaling import DOWNSCALE_DELAY_S, UPSCALE_DELAY_S

__all__ = ["ray_group"]

_HEADER = """\
# Ray Serve config for {script}, written by `scorehost ray config`.
# Every node needs `pip install 'scorehost[ray]'`, and Ray started with token authentication and the
# high-throughput mode on, here and where `serve run` runs (the file holds no token):
#   export RAY_AUTH_MODE=token RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_THROUGHPUT_OPTIMIZED=1
#   (umask 077 && ray get-auth-token --generate > /dev/null)   (on the head; copy ~/.ray/auth_token to the others)
#   ray start --head ...            (then: ray start --address=HEAD:6379 on the other machines)
#   serve run --address HEAD:6379 --non-blocking this-file.yaml
# or paste `applications` into a KubeRay RayService's serveConfigV2. See docs/ray.md.
# {where}
"""


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user wrote the option (a default is not a choice, so the -f file may replace it)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


_CONFIG_EXAMPLES = (
    "scorehost ray config /shared/digits/score.py --model-dir /shared/models/digits > serve.yaml",
    "scorehost ray config score.py --working-dir-uri s3://bucket/digits.zip --replicas 4 > serve.yaml",
    "scorehost ray config -f blue-deployment.yml > serve.yaml",
    "serve run --address HEAD:6379 --non-blocking serve.yaml",
)


@click.group("ray", epilog=examples(*_CONFIG_EXAMPLES))
def ray_group() -> None:
    """Run entry scripts on a Ray Serve cluster (pip install 'scorehost[ray]')."""


@ray_group.command(
    "config",
    epilog=examples(*_CONFIG_EXAMPLES, note="See docs/ray.md for running the file and for what each setting does."),
)
@click.argument("script", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@file_option(
    "An Azure ML deployment YAML: SCRIPT, the name and the settings listed above come from it; options given "
    "here win. SCRIPT then defaults to the file's code folder / scoring_script (absolute), and --working-dir to that "
    "code folder."
)
@set_option
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
@click.option("--name", default="score", help="The Serve application's name.  [default: -f's name, else score]")
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
@click.option(
    "--upscale-delay",
    default=UPSCALE_DELAY_S,
    show_default=True,
    type=click.FloatRange(0, 86_400),
    help="Seconds the load must call for more replicas before one is added (upscale_delay_s).",
)
@click.option(
    "--downscale-delay",
    default=DOWNSCALE_DELAY_S,
    show_default=True,
    type=click.FloatRange(0, 86_400),
    help="Seconds the load must call for fewer replicas before one is removed (downscale_delay_s).",
)
@click.option(
    "--max-ongoing",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests a replica takes at once (Serve's max_ongoing_requests).",
)
@click.option(
    "--max-queued",
    default=64,
    show_default=True,
    type=click.IntRange(min=-1),
    help="Requests that may wait for a replica; more get 503 (-1: no limit).",
)
@click.option(
    "--request-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may take, waiting and run() together (the app's timeout and Serve's "
    "http_options.request_timeout_s); then 504.",
)
@click.option("--num-cpus", default=1.0, show_default=True, type=click.FloatRange(min=0), help="CPUs per replica.")
@click.option(
    "--num-gpus",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="GPUs per replica; fractions share one GPU, e.g. 0.5.",
)
@click.option(
    "--run-input",
    type=click.Choice(["auto", "data", "body"]),
    help="What run() receives, as `scorehost serve --run-input`.  [default: auto]",
)
@click.option("--threads", type=click.IntRange(1, 256), help="Concurrent run() calls per replica.")
@click.pass_context
def ray_config_command(
    ctx: click.Context, /, script: Path | None, yaml_file: Path | None, overrides: tuple[str, ...], **options: Any
) -> None:
    """Print a Serve config file that runs SCRIPT on a Ray cluster.

    \b
    With -f deployment.yml (options given on the command line win):
      instance_count             --replicas (a fixed count), unless scale_settings is target_utilization:
      scale_settings             min_instances, max_instances as --min-replicas, --max-replicas, and
                                 --target-ongoing = target_utilization_percentage / 100 x --max-ongoing
                                 (at least 1): Azure scales on busy capacity, Serve on requests in progress
      request_timeout_ms         --request-timeout (the app's timeout and http_options.request_timeout_s)
      max_concurrent_requests_per_instance   --max-ongoing
      resources.requests         cpu as --num-cpus (500m = 0.5), gpu as --num-gpus
      instance_type              a GPU VM size's GPUs as --num-gpus (Standard_NC24ads_A100_v4: 1)
      readiness/liveness_probe   period as the deployment's health_check_period_s (readiness's first)
      environment_variables      the application's runtime_env env_vars
      name                       --name
    """
    import yaml

    from scorehost.ray.config import ServeConfig

    given = {name for name in options if _given(ctx, name)}
    extra: dict[str, Any] = {}
    code_dir: Path | None = None
    if yaml_file is not None:
        from scorehost.errors import ProjectFileError

        try:
            found = _from_file(yaml_file, overrides, given, options["max_ongoing"])
        except ProjectFileError as error:
            raise click.ClickException(error.message) from None
        file_script, file_code_dir = found.pop("script"), found.pop("code_dir")
        if script is None:  # an explicit SCRIPT wins, and its folder is then the working dir by default
            script, code_dir = file_script, file_code_dir
        for key in ("env_vars", "health_check_period_s"):
            if key in found:
                extra[key] = found.pop(key)
        options.update(found)
    elif overrides:
        raise click.UsageError("--set changes the fields of a -f file; give -f deployment.yml")
    if script is None:
        raise click.UsageError("give SCRIPT (the entry script) or -f deployment.yml")
    if options["replicas"] is None and options["min_replicas"] > options["max_replicas"]:
        raise click.UsageError("--min-replicas must not exceed --max-replicas.")
    entry = str(script.resolve())
    if options["working_dir_uri"]:
        working_dir = (options["working_dir"] or code_dir or script.parent).resolve()
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
        upscale_delay_s=options["upscale_delay"],
        downscale_delay_s=options["downscale_delay"],
        max_ongoing_requests=options["max_ongoing"],
        max_queued_requests=options["max_queued"],
        request_timeout_s=options["request_timeout"],
        num_cpus=options["num_cpus"],
        num_gpus=options["num_gpus"],
        **extra,
    )
    source = f" (from {yaml_file.name})" if yaml_file is not None else ""
    header = _HEADER.format(script=f"{script}{source}", where=where)
    click.echo(header + yaml.safe_dump(config.to_dict(), sort_keys=False), nl=False)


def _from_file(yaml_file: Path, overrides: tuple[str, ...], given: set[str], max_ongoing: int) -> dict[str, Any]:
    """The config options the deployment file sets, less those `given` on the command line; also `script`,
    `code_dir`, and the ServeConfig fields without an option (`env_vars`, `health_check_period_s`)."""
    from scorehost.azureml.deployment import read_deployment_file
    from scorehost.cli.k8s import echo_file_warnings
    from scorehost.ray.config import cpu_count

    deployment = read_deployment_file(yaml_file, overrides)
    echo_file_warnings(deployment, "every node's Python must hold its packages and scorehost[ray]")
    document = deployment.document
    found: dict[str, Any] = {"name": deployment.name, "script": deployment.code_dir / deployment.script}
    found["code_dir"] = deployment.code_dir
    request = deployment.request
    if request.request_timeout_ms is not None:
        found["request_timeout"] = request.request_timeout_ms / 1000
    if request.max_concurrent_requests_per_instance is not None:
        found["max_ongoing"] = request.max_concurrent_requests_per_instance
    if "max_ongoing" not in given:
        max_ongoing = found.get("max_ongoing", max_ongoing)
    scale = deployment.scale
    if scale is not None and scale.type == "target_utilization":
        low = 1 if scale.min_instances is None else scale.min_instances  # Azure's defaults: min 1, max 1, 70 %
        found.update(replicas=None, min_replicas=low)
        found["max_replicas"] = max(low, 1) if scale.max_instances is None else scale.max_instances
        percent = 70 if scale.target_utilization_percentage is None else scale.target_utilization_percentage
        # Azure's target is a share of each instance's busy capacity; Serve's, requests in progress per replica
        found["target_ongoing"] = max(1.0, round(percent / 100 * max_ongoing, 2))
    elif given.isdisjoint({"min_replicas", "max_replicas", "target_ongoing"}):
        found["replicas"] = deployment.instances  # default scale settings: a fixed count
    resources = {part: deployment.resources.get(part) or {} for part in ("requests", "limits")}
    part = "requests" if resources["requests"].get("cpu") is not None else "limits"
    if resources[part].get("cpu") is not None:
        try:
            found["num_cpus"] = cpu_count(str(resources[part]["cpu"]))
        except ValueError as error:
            raise document.error(("resources", part, "cpu"), str(error)) from None
    if deployment.gpus:  # resources' gpu or nvidia.com/gpu, else instance_type's GPUs
        found["num_gpus"] = deployment.gpus
    probe = deployment.readiness or deployment.liveness
    if probe is not None:
        found["health_check_period_s"] = float(probe.period)
    if deployment.variables:
        found["env_vars"] = dict(deployment.variables)
    unused = [f"request_settings.{key}" for key in ("max_queue_wait_ms",) if getattr(request, key) is not None]
    unused += ["scale_settings.polling_interval"] if scale is not None and scale.polling_interval else []
    unused += [f"resources.{part}.memory" for part in ("requests", "limits") if resources[part].get("memory")]
    unused += ["resources.limits.cpu"] if resources["limits"].get("cpu") and resources["requests"].get("cpu") else []
    if unused:
        click.secho(
            f"warning: {yaml_file.name}: not used by a Serve config: {', '.join(unused)} (Serve reserves CPUs and "
            "GPUs, queues by count with --max-queued, and scales on requests in progress)",
            fg="yellow",
            err=True,
        )
    return {key: value for key, value in found.items() if key not in given}
