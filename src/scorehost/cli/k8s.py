"""`scorehost k8s`: Kubernetes manifests for an entry script in a container image."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from scorehost.cli.project_options import echo_warning, echo_warnings, file_option, set_option

if TYPE_CHECKING:
    from scorehost.azureml.deployment import DeploymentFile, Probe
    from scorehost.k8s.manifests import ProbeTiming

__all__ = ["AZUREML_APP_ROOT", "echo_file_warnings", "k8s_command"]

# Where Azure ML mounts a deployment's code folder in the container (its AML_APP_ROOT)
AZUREML_APP_ROOT = "/var/azureml-app"

# Spare threads per worker that hold requests waiting under --max-queue-wait (as `deployments create -f` gives)

_EPILOG = """
\b
Examples:
  scorehost k8s /app/score.py --image registry.example.com/mnist:3 --model-dir /models/mnist \\
      --model-claim mnist-models --min-replicas 2 --max-replicas 10 > manifests.yaml
  scorehost k8s -f kubernetes-blue-deployment.yml --image registry.example.com/model-1:3 > manifests.yaml
  scorehost k8s /app/score.py --image registry.example.com/llm:1 --gpus 2 --workers 2 > manifests.yaml
  kubectl apply -f manifests.yaml

\b
The image must have scorehost installed (pip install scorehost) and SCRIPT at that path. The
Service listens on port 80 inside the cluster; expose it with your Ingress or Gateway.
"""


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user wrote the option (a default is not a choice, so the -f file may replace it)."""
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


@click.command("k8s", epilog=_EPILOG)
@click.argument("script", required=False)
@file_option(
    "An Azure ML deployment YAML (kubernetesOnlineDeployment or managedOnlineDeployment): its name, "
    "instance_count, scale_settings, resources, probes, request_timeout_ms and environment_variables set the "
    "manifests; options given here win. SCRIPT then defaults to /var/azureml-app/<code folder's name>/"
    "<scoring_script>, where Azure ML mounts the code: copy the code folder there in the image."
)
@set_option
@click.option("--image", required=True, help="The container image holding SCRIPT and scorehost.")
@click.option(
    "--name", help="Name of every object (a DNS label).  [default: -f's name, else SCRIPT's folder name, else 'score']"
)
@click.option("--namespace", help="Namespace of every object.  [default: none, kubectl's current one]")
@click.option("--model-dir", help="AZUREML_MODEL_DIR inside the container.")
@click.option("--model-claim", help="A PersistentVolumeClaim with the model, mounted read-only at --model-dir.")
@click.option(
    "--replicas",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pods to start with (kept within the autoscaler's floor and ceiling).",
)
@click.option("--min-replicas", default=2, show_default=True, type=click.IntRange(min=1), help="Autoscaling floor.")
@click.option("--max-replicas", default=10, show_default=True, type=click.IntRange(min=1), help="Autoscaling ceiling.")
@click.option(
    "--cpu-target",
    default=70,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Average CPU use the autoscaler aims at, in percent of --cpu.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="`scorehost serve` worker processes per pod.",
)
@click.option("--cpu", default="1", show_default=True, help="CPU requested per pod, a Kubernetes quantity (500m, 2).")
@click.option(
    "--memory",
    default="1Gi",
    show_default=True,
    help="Memory per pod (request and limit), a Kubernetes quantity (512Mi, 2Gi).",
)
@click.option(
    "--gpus",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="NVIDIA GPUs per pod (an nvidia.com/gpu limit); the workers spread over them (serve --devices auto).",
)
@click.option(
    "--gpu-node-selector",
    "gpu_node_selector",
    multiple=True,
    metavar="KEY=VALUE|none",
    help="The node label GPU pods need, repeatable; none: no nodeSelector, the nvidia.com/gpu limit alone places "
    "them.  [default: nvidia.com/gpu.present=true, GPU feature discovery's]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may take (serve's --timeout).  [default: serve's, 60]",
)
@click.option(
    "--init-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds init() may take (serve's --init-timeout; the startupProbe allows as long).",
)
@click.option(
    "--graceful-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds in-flight requests get when a pod stops (serve's --graceful-timeout, within the pod's "
    "terminationGracePeriodSeconds).",
)
@click.pass_context
def k8s_command(
    ctx: click.Context, /, script: str | None, yaml_file: Path | None, overrides: tuple[str, ...], **options: Any
) -> None:
    """Print a Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget that run SCRIPT.

    \b
    With -f deployment.yml (options given on the command line win):
      name                     --name (lower-cased)
      instance_count           --replicas; scale_settings default: also --min/--max-replicas
      scale_settings           target_utilization: min/max_instances, target_utilization_percentage
                               as --min-replicas, --max-replicas, --cpu-target
      resources                requests cpu/memory, limits cpu/memory, gpu as --gpus (nvidia.com/gpu)
      instance_type            a GPU VM size's GPUs as --gpus (Standard_NC24ads_A100_v4: 1)
      readiness_probe          the readinessProbe on /ready; liveness_probe: the livenessProbe on /live
      request_timeout_ms       --timeout; max_queue_wait_ms: serve's --max-queue-wait
      environment_variables    the container's env
    """
    import yaml

    from scorehost.k8s.manifests import KubernetesApp

    extra: dict[str, Any] = {}
    if yaml_file is not None:
        from scorehost.errors import ProjectFileError

        try:
            from_file = _from_file(yaml_file, overrides)
        except ProjectFileError as error:
            raise click.ClickException(error.message) from None
        for key, value in from_file.items():
            if key == "script":
                script = script or value
            elif key in options:
                if not _given(ctx, key):
                    options[key] = value
            elif not (key == "memory_limit" and _given(ctx, "memory")):  # --memory is request and limit
                extra[key] = value
    elif overrides:
        raise click.UsageError("--set changes the fields of a -f file; give -f deployment.yml")
    if script is None:
        raise click.UsageError("give SCRIPT (the entry script's path inside the image) or -f deployment.yml")
    name = options["name"] or _default_name(script)
    if options["min_replicas"] > options["max_replicas"]:
        message = "--min-replicas must not exceed --max-replicas."
        if yaml_file is not None:
            message += f" {yaml_file.name} and the options give min {options['min_replicas']}, "
            message += f"max {options['max_replicas']}."
        raise click.UsageError(message)
    gpu_labels = _node_selector(options["gpu_node_selector"], options["gpus"])
    if gpu_labels is not None:
        extra["gpu_node_selector"] = gpu_labels
    try:
        app = KubernetesApp(
            name=name,
            image=options["image"],
            script=script,
            model_dir=options["model_dir"],
            model_claim=options["model_claim"],
            namespace=options["namespace"],
            # at least the autoscaler's floor, at most its ceiling: it would change any other count at once
            replicas=min(max(options["replicas"], options["min_replicas"]), options["max_replicas"]),
            min_replicas=options["min_replicas"],
            max_replicas=options["max_replicas"],
            cpu_target_percent=options["cpu_target"],
            workers=options["workers"],
            cpu=options["cpu"],
            memory=options["memory"],
            gpus=options["gpus"],
            timeout_s=options["timeout"],
            init_timeout_s=options["init_timeout"],
            graceful_timeout_s=options["graceful_timeout"],
            **extra,
        )
    except ValueError as error:
        hint = (
            " (the limit is the -f file's resources.limits: --set changes it)"
            if yaml_file and "limit" in str(error)
            else ""
        )
        raise click.UsageError(f"{error}{hint}") from None
    source = f" (from {yaml_file.name})" if yaml_file is not None else ""
    click.echo(
        f"# Kubernetes manifests for {script}{source}, written by `scorehost k8s`; kubectl apply -f this-file.yaml\n"
    )
    click.echo(yaml.safe_dump_all(app.manifests(), sort_keys=False), nl=False)


def _node_selector(given: tuple[str, ...], gpus: int) -> dict[str, str] | None:
    """--gpu-node-selector's labels ({} for `none`); None when not given: GPU feature discovery's label."""
    if not given:
        return None
    if not gpus:
        raise click.UsageError("--gpu-node-selector places GPU pods: give --gpus N (or a -f file that asks for GPUs)")
    if "none" in given:
        if len(given) > 1:
            raise click.UsageError("--gpu-node-selector none drops the nodeSelector: give no labels beside it")
        return {}
    labels: dict[str, str] = {}
    for pair in given:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE (e.g. nvidia.com/gpu.present=true) or none",
                param_hint="--gpu-node-selector",
            )
        labels[key] = value
    return labels


def _default_name(script: str) -> str:
    parts = [part for part in script.replace("\\", "/").split("/")[:-1] if part not in ("", ".", "..")]
    candidate = parts[-1].lower().replace("_", "-") if parts else "score"
    return candidate if candidate and candidate[0].isalnum() else "score"


def echo_file_warnings(deployment: DeploymentFile, environment_note: str) -> None:
    """The file's warnings on stderr; those about building its environment here become `environment_note`:
    manifests and Serve configs build nothing, the image or the nodes must hold the packages."""
    shown = deployment.document.path.name
    warnings = list(deployment.warnings)  # not environment_warnings: they are about building it on this machine
    if deployment.environment is not None:
        warnings.append(f"{shown}: environment is not built: {environment_note}")
    if deployment.app_insights:
        warnings.append(
            f"{shown}: app_insights_enabled has no Application Insights here: set OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
            "in environment_variables to export traces (docs/observability.md)"
        )
    echo_warnings(warnings)


def _from_file(yaml_file: Path, overrides: tuple[str, ...]) -> dict[str, Any]:
    """The k8s options (and KubernetesApp fields without an option) that the deployment file sets."""
    from scorehost.azureml.deployment import read_deployment_file
    from scorehost.k8s.manifests import check_name

    deployment = read_deployment_file(yaml_file, overrides)
    echo_file_warnings(deployment, "the pods run --image, which must hold its packages and scorehost")
    document, shown = deployment.document, yaml_file.name
    if deployment.builtin_script:
        raise document.error(
            (),
            "the deployment has no scoring script (an MLflow model served by scorehost's built-in one), which "
            "`scorehost k8s` cannot render yet: add code_configuration with a score.py that loads the model, or "
            "run it with `scorehost deployments create -f`",
        )
    if deployment.collection:
        echo_warning(
            f"{shown}: data_collector is not rendered: rows would land on each pod's own disk; collect with "
            "`scorehost deployments create -f` instead"
        )
    try:
        name = check_name(deployment.name.lower())
    except ValueError as error:
        raise document.error(("name",), f"{error}; or give --name") from None
    found: dict[str, Any] = {
        "name": name,
        "script": str(PurePosixPath(AZUREML_APP_ROOT, deployment.code_dir.name, deployment.script.as_posix())),
        **_scale(deployment),
        **_resources(deployment),
    }
    if deployment.request.request_timeout_ms is not None:
        found["timeout"] = deployment.request.request_timeout_ms / 1000
    if deployment.request.max_queue_wait_ms is not None:
        # Waiting requests are timed only on threads of their own: without spare ones they would wait untimed
        wait = f"{deployment.request.max_queue_wait_ms / 1000:g}"
        from scorehost.azureml.apply import QUEUE_THREADS

        found["extra_args"] = ("--max-queue-wait", wait, "--spare-threads", str(QUEUE_THREADS))
    if deployment.request.max_concurrent_requests_per_instance is not None:
        echo_warning(
            f"{shown}: request_settings.max_concurrent_requests_per_instance is not used: a pod runs --workers "
            "run() calls at once; others wait, within --timeout"
        )
    if deployment.readiness is not None:
        found["readiness"] = _timing(deployment.readiness)
    if deployment.liveness is not None:
        if deployment.liveness.success_threshold != 1:
            echo_warning(
                f"{shown}: liveness_probe.success_threshold is 1 on Kubernetes (as on Azure ML), not "
                f"{deployment.liveness.success_threshold}"
            )
        found["liveness"] = _timing(deployment.liveness, success_threshold=1)
    if deployment.variables:
        found["env"] = dict(deployment.variables)
    return found


def _timing(probe: Probe, *, success_threshold: int | None = None) -> ProbeTiming:
    from scorehost.k8s.manifests import ProbeTiming

    return ProbeTiming(
        initial_delay_s=probe.initial_delay,
        period_s=probe.period,
        timeout_s=probe.timeout,
        success_threshold=probe.success_threshold if success_threshold is None else success_threshold,
        failure_threshold=probe.failure_threshold,
    )


def _scale(deployment: DeploymentFile) -> dict[str, Any]:
    scale, shown = deployment.scale, deployment.document.path.name
    if scale is None or scale.type == "default":
        # Azure's default scale settings: instance_count pods, never more or fewer
        count = deployment.instances
        return {"replicas": count, "min_replicas": count, "max_replicas": count}
    low = 1 if scale.min_instances is None else scale.min_instances  # Azure's defaults: min 1, max 1
    if low == 0:
        echo_warning(
            f"{shown}: scale_settings.min_instances 0 becomes 1: a HorizontalPodAutoscaler keeps one pod at least"
        )
        low = 1
    high = max(low, 1) if scale.max_instances is None else scale.max_instances
    found: dict[str, Any] = {"replicas": deployment.instances, "min_replicas": low, "max_replicas": high}
    if scale.target_utilization_percentage is not None:
        found["cpu_target"] = scale.target_utilization_percentage
    if scale.polling_interval is not None:
        echo_warning(
            f"{shown}: scale_settings.polling_interval is not used: the cluster sets how often autoscalers look "
            "(kube-controller-manager --horizontal-pod-autoscaler-sync-period, 15 s by default)"
        )
    return found


def _resources(deployment: DeploymentFile) -> dict[str, Any]:
    """requests/limits as Kubernetes takes them: a request defaults to its limit, a memory limit to its request."""
    from scorehost.k8s.manifests import parse_quantity

    document = deployment.document
    amounts: dict[tuple[str, str], tuple[str, Any]] = {}  # (requests|limits, cpu|memory|gpu) -> (text, number)
    for part in ("requests", "limits"):
        for key, value in (deployment.resources.get(part) or {}).items():
            if value is None:
                continue
            at = ("resources", part, key)
            try:
                amounts[part, "gpu" if key == "nvidia.com/gpu" else key] = (str(value), parse_quantity(str(value)))
            except ValueError as error:
                raise document.error(at, str(error)) from None
    found: dict[str, Any] = {}
    for what, option in (("cpu", "cpu"), ("memory", "memory")):
        request, limit = amounts.get(("requests", what)), amounts.get(("limits", what))
        if request is not None and limit is not None and request[1] > limit[1]:
            raise document.error(
                ("resources", "limits", what),
                f"resources.requests.{what} {request[0]} is above resources.limits.{what} {limit[0]}: "
                "Kubernetes refuses it; raise the limit or lower the request",
            )
        chosen = request or limit
        if chosen is not None:
            found[option] = chosen[0]
        if limit is not None:
            found[f"{what}_limit"] = limit[0]
    gpus = {part: amounts[part, "gpu"] for part in ("requests", "limits") if (part, "gpu") in amounts}
    if gpus:
        numbers = {number for _, number in gpus.values()}
        part = "limits" if "limits" in gpus else "requests"
        if len(numbers) > 1:
            raise document.error(
                ("resources", part, "gpu"),
                'Kubernetes needs the same GPU count in requests and limits: give one whole number (e.g. gpu: "1")',
            )
        number = numbers.pop()
        if number != int(number):
            raise document.error(
                ("resources", part, "gpu"),
                f"{gpus[part][0]} GPU: a pod gets whole GPUs on Kubernetes (sharing one takes MIG or the device "
                "plugin's time-slicing, which offer each share as a whole nvidia.com/gpu): give a whole number "
                '(e.g. "1")',
            )
        found["gpus"] = int(number)
    elif deployment.gpus:
        found["gpus"] = int(deployment.gpus)  # instance_type's: a VM size has whole GPUs
    return found
