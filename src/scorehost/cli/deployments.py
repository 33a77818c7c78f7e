"""`scorehost deployments`: versions of a scoring service behind an endpoint, from flags or from an Azure ML
deployment YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scorehost.cli.collect_options import collection_changes, merged_serve_options, retention_changes
from scorehost.cli.controlplane_client import cli_errors, client_of, json_option, show_table
from scorehost.cli.deployment_options import SECTIONS, declaring_options
from scorehost.cli.generations import generation_text, problem_line
from scorehost.cli.help_sections import SectionedCommand
from scorehost.cli.help_text import examples
from scorehost.cli.output import echo_json
from scorehost.cli.placement import ray_options
from scorehost.cli.project_options import echo_warnings
from scorehost.cli.workspace import group_home_option, home_option

if TYPE_CHECKING:
    from scorehost.azureml.apply import DeploymentRequest

__all__ = ["deployments_group"]


@click.group(
    "deployments",
    epilog=examples(
        "scorehost deployments create digits blue --script examples/digits/score.py --model digits:1",
        "scorehost deployments show digits blue",
        "scorehost deployments logs digits blue -n 50",
    ),
)
@group_home_option
def deployments_group() -> None:
    """Versions of a scoring service behind an endpoint: a script, its models, its instances."""


def _environment(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        found[key] = value
    return found


def _build_environment(spec: dict[str, Any] | None, home: Path | None, quiet: bool = False) -> None:
    """Build the environment here, with progress (none when `quiet`), so the control plane finds it cached (it
    would build it itself otherwise, silently)."""
    if spec is None:
        return
    from scorehost.cli.progress import LineStatus
    from scorehost.cli.workspace import workspace_of
    from scorehost.environments import EnvironmentSpec, ensure_environment

    with LineStatus("building the Python environment", enabled=False if quiet else None) as status:
        built = ensure_environment(EnvironmentSpec.from_json(spec), workspace_of(home), progress=status)
    if not quiet:
        click.echo(f"environment {built.key}: Python {built.python_version}, {len(built.packages)} packages", err=True)


def _from_file(
    yaml_file: Path,
    overrides: tuple[str, ...],
    endpoint: str | None,
    name: str | None,
    home: Path | None,
    nearest_python: bool,
) -> DeploymentRequest:
    from scorehost.azureml.apply import deployment_request
    from scorehost.azureml.deployment import read_deployment_file
    from scorehost.cli.progress import BarProgress
    from scorehost.cli.workspace import workspace_of

    # ENDPOINT and NAME on the command line win over the file, as `az ml`'s --endpoint-name and --name do.
    given = [f"endpoint_name={endpoint}"] if endpoint else []
    given += [f"name={name}"] if name else []
    deployment = read_deployment_file(yaml_file, (*overrides, *given))
    request = deployment_request(deployment, workspace_of(home), nearest_python=nearest_python, progress=BarProgress())
    echo_warnings(request.warnings)
    return request


def _flag_fields(
    script: Path | None,
    code_dir: Path | None,
    models: tuple[str, ...],
    instances: int | None,
    environment: tuple[str, ...],
    environment_file: Path | None,
    nearest_python: bool,
    follow_model: bool | None,
    *,
    creating: bool,
    home: Path | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if creating:
        if script is None:  # an MLflow model needs none: the built-in scoring script serves it
            from scorehost.cli.mlflow_builtin import builtin_deployment

            builtin = builtin_deployment(models, home, with_environment=environment_file is None)
            if builtin is None:
                raise click.UsageError("give --script (or -f deployment.yml, or --model with an MLflow model)")
            script, fields["python_environment"] = builtin.script, builtin.environment
        folder = code_dir or script.parent
        fields["script"] = (
            script.resolve().relative_to(folder.resolve()) if script.is_absolute() or code_dir else script.name
        )
        fields["code_dir"] = folder
        fields["instances"] = instances or 1
    else:
        fields.update(script=script, code_dir=code_dir, instances=instances)
    fields["models"] = models or (() if creating else None)
    if follow_model is not None:
        fields["follow_models"] = follow_model
    fields["environment"] = _environment(environment)
    if environment_file is not None:
        from scorehost.azureml.apply import environment_of_file

        warnings: list[str] = []
        fields["python_environment"] = environment_of_file(
            environment_file, nearest_python=nearest_python, warnings=warnings
        )
        echo_warnings(warnings)
    return fields


def _declare(
    creating: bool,
    endpoint: str | None,
    name: str | None,
    options: dict[str, Any],
) -> None:
    """What `create` and `update` share: the fields from the file or the flags, the environment built, the call,
    the wait (with its progress), --all-traffic, and how to call it."""
    from scorehost.cli.deployment_wait import Progress, next_steps, wait_ready

    as_json = options.pop("as_json")
    ray_flags = {key: options.pop(key) for key in list(options) if key.startswith("ray_")}
    collecting = collection_changes(options)
    retention = retention_changes(options)
    home, backend = options["home"], options["backend"]
    yaml_file, environment_file = options["yaml_file"], options["environment_file"]
    flags_given = [flag for flag in ("script", "code_dir", "instances") if options[flag] is not None]
    flags_given += [flag for flag in ("models", "environment") if options[flag]]
    flags_given += ["follow_model"] if options["follow_model"] is not None else []
    request: DeploymentRequest | None = None
    if yaml_file is not None:
        if collecting is not None:
            raise click.UsageError("--collect cannot be combined with -f: set data_collector in the file (or --set)")
        if flags_given or environment_file is not None:
            shown = ", ".join(f"--{flag.replace('_', '-')}" for flag in flags_given) or "--environment"
            raise click.UsageError(f"{shown} cannot be combined with -f: change the file's fields with --set")
        request = _from_file(yaml_file, options["overrides"], endpoint, name, home, options["nearest_python"])
        endpoint, name, fields = request.endpoint, request.name, request.fields
    else:
        if options["overrides"]:
            raise click.UsageError("--set changes the fields of a -f file; give -f deployment.yml")
        if endpoint is None or name is None:
            raise click.UsageError("give ENDPOINT and NAME (or -f deployment.yml)")
        fields = _flag_fields(
            options["script"],
            options["code_dir"],
            options["models"],
            options["instances"],
            options["environment"],
            environment_file,
            options["nearest_python"],
            options["follow_model"],
            creating=creating,
            home=home,
        )
    ray = ray_options(backend, ray_flags, creating=creating)
    wait = options["wait"] or options["all_traffic"]
    with client_of(home) as client:
        runs_on = backend or ("local" if creating else client.get_deployment(endpoint, name).get("backend", "local"))
        if runs_on == "ray" and request is not None:  # the file's GPUs per replica, unless --num-gpus says otherwise
            ray = {**request.ray_options(), **(ray or {})} or None
        if runs_on == "ray" and options["devices"] is not None:
            raise click.UsageError("--devices places a local deployment's workers; on Ray, ask for --num-gpus")
        if runs_on == "local":  # on Ray, each node builds it (Ray's uv runtime_env): nothing to build here
            _build_environment(fields.get("python_environment"), home, quiet=as_json)
        if collecting is not None:
            current = {} if creating else client.get_deployment(endpoint, name).get("serve_options") or {}
            fields["serve_options"] = merged_serve_options(current, collecting)
        serve_flags = {**retention, **({"devices": options["devices"]} if options["devices"] is not None else {})}
        if serve_flags:
            if "serve_options" not in fields:  # from flags: the deployment's own (of an update) kept beside them
                current = {} if creating else client.get_deployment(endpoint, name).get("serve_options") or {}
                fields["serve_options"] = dict(current)
            fields["serve_options"] = {**fields["serve_options"], **serve_flags}
        if creating:
            result = client.create_deployment(endpoint, name, backend=backend or "local", ray=ray, **fields)
        else:
            result = client.update_deployment(endpoint, name, backend=backend, ray=ray, **fields)
        if wait:
            progress = Progress.for_output(as_json)
            result = wait_ready(client, endpoint, name, result["generation"], options["timeout"], progress)
        if options["all_traffic"]:
            client.set_traffic(endpoint, {name: 100})
            if as_json:
                result = client.get_deployment(endpoint, name)
        if as_json:
            echo_json(result)
            return
        # stdout: what happened, one line each (scripts read it); stderr: how to go on, for people.
        click.echo(f"{endpoint}/{name} generation {result['generation']}: {result['status'].get('state')}")
        if options["all_traffic"]:
            click.echo(f"{endpoint}: {name}=100")
        for line in next_steps(client, endpoint, name) if wait else []:
            click.echo(line, err=True)


@deployments_group.command(
    "create",
    cls=SectionedCommand,
    sections=SECTIONS,
    epilog=examples(
        "scorehost deployments create mnist blue --script score.py --model sklearn_mnist:1 --instances 2",
        "scorehost deployments create -f blue-deployment.yml --all-traffic",
    ),
)
@click.argument("endpoint", required=False)
@click.argument("name", required=False)
@declaring_options
@cli_errors
def create_deployment(endpoint: str | None, name: str | None, **options: Any) -> None:
    """Create deployment NAME behind ENDPOINT and start it (the first deployment gets 100% of the traffic).

    NAME: 3-32 letters, digits and '-', starting with a letter and not ending with '-' (as on Azure ML).

    From flags (--script, --model, ...) or from an Azure ML deployment YAML (-f blue-deployment.yml), with an
    environment of its own from its conda_file or --environment. It waits until ready, showing the instances and
    the script's init() log as they start. With --backend ray it runs as Ray Serve replicas on the cluster at
    --ray-address; the script, its folder and the model store must be at the same paths on every node
    (docs/ray.md).
    """
    _declare(True, endpoint, name, options)


@deployments_group.command(
    "update",
    cls=SectionedCommand,
    sections=SECTIONS,
    epilog=examples(
        "scorehost deployments update mnist blue --model sklearn_mnist:2",
        "scorehost deployments update mnist blue --instances 4 --env LOG_LEVEL=debug",
    ),
)
@click.argument("endpoint", required=False)
@click.argument("name", required=False)
@declaring_options
@cli_errors
def update_deployment(endpoint: str | None, name: str | None, **options: Any) -> None:
    """Change deployment NAME with no downtime: the new generation starts, then takes over, then the old stops.

    Options not given keep their values; -f replaces the declaration with the file's. --backend moves the
    deployment between local processes and Ray. An update started while this one waits supersedes it: this one
    then says so and exits 1 at once.
    """
    _declare(False, endpoint, name, options)


@deployments_group.command(
    "list", epilog=examples("scorehost deployments list digits", "scorehost deployments list digits --json")
)
@click.argument("endpoint")
@home_option
@json_option
@cli_errors
def list_deployments(endpoint: str, home: Path | None, as_json: bool) -> None:
    """List ENDPOINT's deployments with their state."""
    with client_of(home) as client:
        deployments = client.list_deployments(endpoint)
    if as_json:
        echo_json(deployments)
        return
    rows = [
        [
            d["name"],
            generation_text(d),
            d["status"].get("state", "?"),
            d.get("backend", "local"),
            _scale(d),
            ",".join(d["models"]) or "-",
        ]
        for d in deployments
    ]
    show_table(["NAME", "SERVING", "STATE", "BACKEND", "INSTANCES", "MODELS"], rows)
    for line in [line for d in deployments if (line := problem_line(endpoint, d)) is not None]:
        click.echo(line)


def _scale(deployment: dict[str, Any]) -> str:
    """`2`, or `1-8` for an autoscaled Ray deployment."""
    ray = deployment.get("ray") or {}
    if ray.get("min_replicas") is not None:
        return f"{ray['min_replicas']}-{ray['max_replicas']}"
    return str(deployment["instances"])


@deployments_group.command(
    "show", epilog=examples("scorehost deployments show mnist blue", "scorehost deployments show mnist blue --json")
)
@click.argument("endpoint")
@click.argument("name")
@home_option
@json_option
@cli_errors
def show_deployment(endpoint: str, name: str, home: Path | None, as_json: bool) -> None:
    """Show deployment NAME: what it runs, its generations (the declared one, the one that serves, one starting,
    why one failed) and each instance's pid, state, restarts and last cause.
    """
    from scorehost.cli.deployment_show import show_deployment_text

    with client_of(home) as client:
        deployment = client.get_deployment(endpoint, name)
    if as_json:
        echo_json(deployment)
    else:
        show_deployment_text(deployment)


@deployments_group.command(
    "logs",
    epilog=examples(
        "scorehost deployments logs mnist blue -n 200 --follow", "scorehost deployments logs mnist blue --generation 2"
    ),
)
@click.argument("endpoint")
@click.argument("name")
@click.option(
    "--lines", "-n", default=100, show_default=True, type=click.IntRange(0, 100_000), help="How many last lines."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@click.option(
    "--generation",
    type=click.IntRange(1),
    help="This generation's log: the serving one, one starting, or the last that failed to start.  "
    "[default: the one starting, else the serving one]",
)
@home_option
@cli_errors
def deployment_logs(
    endpoint: str, name: str, lines: int, follow: bool, generation: int | None, home: Path | None
) -> None:
    """Print the last lines of deployment NAME's log: the script's output, init() included, and the server's."""
    with client_of(home) as client:
        if not follow:
            click.echo(client.logs(endpoint, name, lines=lines, generation=generation), nl=False)
            return
        try:
            for line in client.follow_logs(endpoint, name, lines=lines, generation=generation):
                click.echo(line)
        except KeyboardInterrupt:
            pass


@deployments_group.command("delete", epilog=examples("scorehost deployments delete digits green"))
@click.argument("endpoint")
@click.argument("name")
@home_option
@cli_errors
def delete_deployment(endpoint: str, name: str, home: Path | None) -> None:
    """Delete deployment NAME (move its traffic away first)."""
    with client_of(home) as client:
        client.delete_deployment(endpoint, name)
    click.echo(f"deleted {endpoint}/{name}")
