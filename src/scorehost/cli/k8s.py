"""`scorehost k8s`: Kubernetes manifests for an entry script in a container image."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["k8s_command"]

_EPILOG = """
\b
Example:
  scorehost k8s /app/score.py --image registry.example.com/mnist:3 --model-dir /models/mnist \\
      --model-claim mnist-models --min-replicas 2 --max-replicas 10 > manifests.yaml
  kubectl apply -f manifests.yaml

\b
The image must have scorehost installed (pip install scorehost) and SCRIPT at that path. The
Service listens on port 80 inside the cluster; expose it with your Ingress or Gateway.
"""


@click.command("k8s", epilog=_EPILOG)
@click.argument("script")
@click.option("--image", required=True, help="The container image holding SCRIPT and scorehost.")
@click.option("--name", help="Name of every object (a DNS label).  [default: SCRIPT's folder name, else 'score']")
@click.option("--namespace", help="Namespace of every object.  [default: none, kubectl's current one]")
@click.option("--model-dir", help="AZUREML_MODEL_DIR inside the container.")
@click.option("--model-claim", help="A PersistentVolumeClaim with the model, mounted read-only at --model-dir.")
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(min=1), help="Pods at first.")
@click.option("--min-replicas", default=2, show_default=True, type=click.IntRange(min=1), help="Autoscaling floor.")
@click.option("--max-replicas", default=10, show_default=True, type=click.IntRange(min=1), help="Autoscaling ceiling.")
@click.option("--cpu-target", default=70, show_default=True, type=click.IntRange(1, 100), help="Average CPU, percent.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="serve workers per pod.")
@click.option("--cpu", default="1", show_default=True, help="CPU requested per pod.")
@click.option("--memory", default="1Gi", show_default=True, help="Memory per pod (request and limit).")
@click.option("--init-timeout", default=600.0, show_default=True, type=click.FloatRange(min=1), help="Seconds.")
@click.option("--graceful-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0), help="Seconds.")
def k8s_command(script: str, **options: Any) -> None:
    """Print a Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget that run SCRIPT."""
    import yaml

    from scorehost.k8s.manifests import KubernetesApp

    name = options["name"] or _default_name(script)
    if options["min_replicas"] > options["max_replicas"]:
        raise click.UsageError("--min-replicas must not exceed --max-replicas.")
    try:
        app = KubernetesApp(
            name=name,
            image=options["image"],
            script=script,
            model_dir=options["model_dir"],
            model_claim=options["model_claim"],
            namespace=options["namespace"],
            replicas=max(options["replicas"], options["min_replicas"]),
            min_replicas=options["min_replicas"],
            max_replicas=options["max_replicas"],
            cpu_target_percent=options["cpu_target"],
            workers=options["workers"],
            cpu=options["cpu"],
            memory=options["memory"],
            init_timeout_s=options["init_timeout"],
            graceful_timeout_s=options["graceful_timeout"],
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"# Kubernetes manifests for {script}, written by `scorehost k8s`; kubectl apply -f this-file.yaml\n")
    click.echo(yaml.safe_dump_all(app.manifests(), sort_keys=False), nl=False)


def _default_name(script: str) -> str:
    parts = [part for part in script.replace("\\", "/").split("/")[:-1] if part not in ("", ".", "..")]
    candidate = parts[-1].lower().replace("_", "-") if parts else "score"
    return candidate if candidate and candidate[0].isalnum() else "score"
