"""`scorehost deployments show` for people: what the deployment declares, its generations (serving, starting,
failed) and each instance's pid, state, restarts and last cause. `--json` prints the API's object instead."""

from __future__ import annotations

from typing import Any

import click

from scorehost.cli.output import new_table, print_renderable

__all__ = ["show_deployment_text"]


def show_deployment_text(deployment: dict[str, Any]) -> None:
    """Print the summary, the generations table and the instances table on stdout."""
    status = deployment.get("status") or {}
    endpoint, name = deployment["endpoint"], deployment["name"]
    click.echo(f"{endpoint}/{name}: {status.get('state', '?')} ({deployment.get('backend', 'local')} backend)")
    for label, value in _summary(deployment):
        click.echo(f"  {label:<14}{value}")
    click.echo("")
    generations = new_table("GENERATION", "ROLE", "STATE", "INSTANCES", "REASON")
    for row in _generations(deployment):
        generations.add_row(*row)
    print_renderable(generations)
    rows = _instances(status)
    if rows:
        click.echo("")
        instances = new_table("INSTANCE", "GENERATION", "PID", "STATE", "RESTARTS", "LAST CAUSE")
        for row in rows:
            instances.add_row(*row)
        print_renderable(instances)
    failed = _failed_generation(deployment)
    if failed is not None:
        command = f"scorehost deployments logs {endpoint} {name} --generation {failed}"
        click.echo(f"\nthe full log of generation {failed}: `{command}`")


def _summary(deployment: dict[str, Any]) -> list[tuple[str, str]]:
    """What the declared generation runs (an older one may serve meanwhile: the generations table says)."""
    rows = [("declared", f"generation {deployment['generation']}")]
    rows.append(("script", f"{deployment['script']}  (in {deployment['code_dir']})"))
    models = ", ".join(deployment.get("models") or []) or "-"
    if deployment.get("follow"):
        models += f"  (follows {', '.join(deployment['follow'])})"
    rows.append(("models", models))
    rows.append(("instances", _scale(deployment)))
    gpus = (deployment.get("ray") or {}).get("num_gpus")
    if gpus:
        rows.append(("gpus", f"{gpus:g} per replica" + ("  (shares one GPU)" if gpus < 1 else "")))
    # Names only: values may be secrets (--json has them).
    rows.append(("environment", ", ".join(sorted(deployment.get("environment") or {})) or "-"))
    python = deployment.get("python_environment")
    rows.append(("python", "an environment of its own (`scorehost environments list`)" if python else "scorehost's"))
    options = deployment.get("serve_options") or {}
    if options:
        rows.append(("serve options", " ".join(f"{key}={_value(value)}" for key, value in sorted(options.items()))))
    if deployment.get("description"):
        rows.append(("description", str(deployment["description"])))
    return rows


def _scale(deployment: dict[str, Any]) -> str:
    ray = deployment.get("ray") or {}
    if ray.get("min_replicas") is not None:
        return f"{ray['min_replicas']}-{ray['max_replicas']} (autoscaled)"
    return str(deployment.get("instances", 1))


def _value(value: Any) -> str:
    return ",".join(str(item) for item in value) if isinstance(value, list) else str(value)


def _instance_summary(instances: list[dict[str, Any]]) -> str:
    if not instances:
        return "-"
    states = [str(instance.get("state")) for instance in instances]
    text = f"{states.count('ready')} of {len(states)} ready"
    others = sorted({state for state in states if state != "ready"})
    return text + (f" ({', '.join(f'{states.count(s)} {s}' for s in others)})" if others else "")


def _failed_generation(deployment: dict[str, Any]) -> int | None:
    """The declared generation when it could not start (an older one may serve meanwhile)."""
    status = deployment.get("status") or {}
    declared = deployment["generation"]
    if status.get("starting_generation") == declared or status.get("serving_generation") == declared:
        return None
    return int(declared) if status.get("error") or deployment.get("failure") else None


def _generations(deployment: dict[str, Any]) -> list[list[str]]:
    status = deployment.get("status") or {}
    declared = int(deployment["generation"])
    serving = status.get("serving_generation", deployment.get("serving_generation"))
    starting = status.get("starting_generation")
    rows: list[list[str]] = []
    if serving is not None:
        role = "serving" + (", declared" if serving == declared else "")
        shown = status.get("generation") == serving
        state = "ready" if status.get("state") in ("ready", "updating") else str(status.get("state", "?"))
        rows.append([str(serving), role, state, _instance_summary(status.get("instances") or []) if shown else "-", ""])
    if starting is not None and starting != serving:
        role = "starting" + (", declared" if starting == declared else " (superseded)")
        instances = status.get("starting_instances") or (status.get("instances") if serving is None else [])
        rows.append([str(starting), role, "starting", _instance_summary(instances or []), ""])
    if declared not in (serving, starting):
        failure = str(status.get("error") or deployment.get("failure") or "")
        state = "failed" if failure else str(status.get("state", "pending"))
        reason = failure.strip().splitlines()[0] if failure.strip() else ""
        prefix = f"{deployment['endpoint']}/{deployment['name']} generation {declared} "
        rows.append([str(declared), "declared", state, "-", reason.removeprefix(prefix)])
    return rows


def _instances(status: dict[str, Any]) -> list[list[str]]:
    shown = status.get("generation")
    listed = [(shown, instance) for instance in status.get("instances") or []]
    starting = status.get("starting_generation")
    if starting is not None and starting != shown:
        listed += [(starting, instance) for instance in status.get("starting_instances") or []]
    return [
        [
            str(instance.get("name", "?")),
            str(generation if generation is not None else "?"),
            str(instance.get("pid") or "-"),
            str(instance.get("state", "?")),
            str(instance.get("restarts", 0)),
            str(instance.get("last_error") or "").strip().splitlines()[0] if instance.get("last_error") else "",
        ]
        for generation, instance in listed
    ]
