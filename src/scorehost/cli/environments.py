"""`scorehost environments create|build|list|show|prune`: the Python environments deployments run in."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import click

from scorehost.cli.controlplane_client import cli_errors, json_option
from scorehost.cli.help_text import examples
from scorehost.cli.output import echo_json, new_table, print_renderable
from scorehost.cli.project_options import echo_warnings, file_option, set_option
from scorehost.cli.workspace import group_home_option, home_option, workspace_of
from scorehost.config import format_size

if TYPE_CHECKING:
    from scorehost.environments import BuiltEnvironment

__all__ = ["environments_group", "environments_in_use", "environments_table"]

_NOBODY: Mapping[str, list[str]] = MappingProxyType({})

_EPILOG = examples(
    "scorehost environments build conda.yml",
    "scorehost environments build requirements.txt --json",
    "scorehost environments list",
    "scorehost environments prune --dry-run",
    note="FILE is an Azure ML conda file (.yml, .yaml) or a requirements.txt. Each environment is built once with "
    "uv, into SCOREHOST_HOME/environments/KEY, and shared by every deployment that declares the same packages.",
)


def environments_in_use(home: Path) -> dict[str, list[str]]:
    """Environment key → the deployments (ENDPOINT/NAME) that run in it, or are declared to: what `prune` keeps
    and `list` shows. Read from the workspace database, so it holds with the control plane stopped too."""
    from scorehost.config import WorkspaceSettings
    from scorehost.deploy.state import DeployState
    from scorehost.environments import EnvironmentSpec
    from scorehost.registry import database

    settings = WorkspaceSettings(home=home)
    if settings.registry_url is None and not (settings.workspace / "registry.db").exists():
        return {}
    engine = database.connect(settings.database_url)
    users: dict[str, list[str]] = {}
    try:
        state = DeployState(engine)
        for endpoint in state.endpoints():
            for record in state.deployments(endpoint.name):
                # The serving generation's environment too: after a failed update it is not the declared one.
                for spec in (record.spec, record.serving_spec):
                    if spec is None or spec.python_environment is None:
                        continue
                    key = EnvironmentSpec.from_json(dict(spec.python_environment)).key()
                    name = f"{spec.endpoint}/{spec.name}"
                    if name not in users.setdefault(key, []):
                        users[key].append(name)
    finally:
        engine.dispose()
    return users


@click.group("environments", epilog=_EPILOG)
@group_home_option
def environments_group() -> None:
    """Build, list, show and prune the Python environments that deployments run in."""


@environments_group.command(
    "build",
    short_help="Build the environment of a conda or requirements file.",
    epilog=examples(
        "scorehost environments build conda.yml",
        "scorehost environments build requirements.txt --nearest-python --json",
    ),
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@home_option
@click.option(
    "--nearest-python",
    is_flag=True,
    help="If the file asks for a Python that is not here (or older than 3.11, which scorehost's runtime needs), "
    "build with the nearest one 3.11 or newer.",
)
@json_option
@cli_errors
def build_command(file: Path, home: Path | None, nearest_python: bool, as_json: bool) -> None:
    """Build the environment FILE declares (nothing happens if it is built already) and say where it is.

    Conda packages with no PyPI equivalent (CUDA, MKL, ...) are skipped, and azureml-defaults and
    azureml-inference-server-http are not installed (scorehost serves the script); both are named in warnings.
    """
    from scorehost.cli.progress import LineStatus
    from scorehost.environments import ensure_environment, find_environment, read_environment_file

    spec = read_environment_file(file)
    echo_warnings(spec.warnings())
    workspace = workspace_of(home)
    cached = find_environment(workspace, spec.key()) is not None
    with LineStatus(f"building the environment of {file.name}") as status:
        built = ensure_environment(spec, workspace, nearest_python=nearest_python, progress=status)
    echo_warnings([line for line in built.warnings if line not in spec.warnings()])
    if as_json:
        echo_json({**built.to_json(), "cached": cached})
        return
    how = "already built" if cached else f"built in {built.build_seconds:.1f} s"
    click.echo(f"environment {built.key} ({how})")
    click.echo(f"  python:   {built.python_version} ({built.python})")
    click.echo(f"  packages: {len(built.packages)}")
    click.echo(f"  path:     {built.path}")


@environments_group.command(
    "create",
    short_help="Register an Azure ML environment YAML (and build it).",
    epilog=examples(
        "scorehost environments create -f environment.yml",
        "scorehost environments create -f environment.yml --set version=2 --no-build",
    ),
)
@file_option(
    "An Azure ML environment YAML: name, version, conda_file (relative to it), image, description, tags.",
    required=True,
)
@set_option
@click.option("--build/--no-build", default=True, help="Build it now (else on first use).  [default: build]")
@click.option("--nearest-python", is_flag=True, help="Build with the nearest Python if the one asked for is absent.")
@home_option
@json_option
@cli_errors
def create_command(
    yaml_file: Path, overrides: tuple[str, ...], build: bool, nearest_python: bool, home: Path | None, as_json: bool
) -> None:
    """Register NAME:VERSION from an Azure ML environment file, as `az ml environment create -f` does; deployments
    name it `environment: azureml:NAME:VERSION` (or `@latest`). A registered version never changes."""
    from scorehost.azureml.apply import register_environment_file
    from scorehost.azureml.assets import read_environment_yaml
    from scorehost.cli.progress import LineStatus
    from scorehost.environments import EnvironmentSpec, ensure_environment

    declared = read_environment_yaml(yaml_file, overrides)
    workspace = workspace_of(home)
    registered = register_environment_file(declared, workspace, nearest_python=nearest_python)
    echo_warnings(declared.warnings)
    key = None
    if build and registered.spec is not None:
        spec = EnvironmentSpec.from_json(dict(registered.spec))
        with LineStatus(f"building {registered.name}:{registered.version}") as status:
            key = ensure_environment(spec, workspace, progress=status).key
    if as_json:
        echo_json({**registered.to_json(), "key": key})
        return
    built = f" (environment {key})" if key else " (image only: runs in scorehost's own environment)"
    click.echo(f"registered environment {registered.name}:{registered.version}{built if build else ''}")


@environments_group.command(
    "list",
    short_help="List the built environments.",
    epilog=examples("scorehost environments list", "scorehost environments list --registered --json"),
)
@click.option("--registered", is_flag=True, help="List the registered environments (NAME:VERSION) instead.")
@home_option
@json_option
@cli_errors
def list_command(registered: bool, home: Path | None, as_json: bool) -> None:
    """List the built environments: key, Python, package count, size, when built, from which file, used by
    which deployments; or, with --registered, the environments registered by name."""
    from scorehost.environments import list_environments

    workspace = workspace_of(home)
    if registered:
        _list_registered(workspace, as_json)
        return
    environments = list_environments(workspace)
    users = environments_in_use(workspace)
    if as_json:
        echo_json([{**built.to_json(), "used_by": users.get(built.key, [])} for built in environments])
        return
    if not environments:
        click.echo("no environments built; build one with `scorehost environments build conda.yml`", err=True)
        return
    print_renderable(environments_table(environments, users))


def _list_registered(home: Path, as_json: bool) -> None:
    from scorehost.environments import EnvironmentSpec
    from scorehost.environments.registered import EnvironmentRegistry
    from scorehost.timestamps import iso_utc

    with EnvironmentRegistry(home) as registry:
        found = registry.list()
    if as_json:
        echo_json([item.to_json() for item in found])
        return
    if not found:
        click.echo("no environments registered; `scorehost environments create -f environment.yml`", err=True)
        return
    table = new_table("NAME", "VERSION", "KEY", "PYTHON", "PACKAGES", "IMAGE", "CREATED", "DESCRIPTION")
    for item in found:
        spec = EnvironmentSpec.from_json(dict(item.spec)) if item.spec is not None else None
        table.add_row(
            item.name,
            item.version,
            spec.key() if spec else "-",
            (spec.python or "-") if spec else "-",
            str(len(spec.requirements)) if spec else "-",
            item.image or "-",
            iso_utc(item.created_at),
            item.description or "-",
        )
    print_renderable(table)


def environments_table(environments: list[BuiltEnvironment], users: Mapping[str, list[str]] = _NOBODY) -> Any:
    """The `list` table; `users` maps a key to the deployments that run in it (column USED BY)."""
    table = new_table("KEY", "PYTHON", "PACKAGES", "SIZE", "CREATED", "SOURCE", "USED BY")
    for built in environments:
        table.add_row(
            built.key,
            built.python_version,
            str(len(built.packages)),
            format_size(built.size_bytes),
            built.created_at,
            built.spec.source or "-",
            ", ".join(users.get(built.key, [])) or "-",
        )
    return table


@environments_group.command(
    "show",
    short_help="Show one environment and every package in it.",
    epilog=examples("scorehost environments show 3f2a", "scorehost environments show 3f2a9c01 --json"),
)
@click.argument("key")
@home_option
@json_option
@cli_errors
def show_command(key: str, home: Path | None, as_json: bool) -> None:
    """Show environment KEY (or a unique start of it): where it is, what it was built from, and each package
    with its version."""
    built = _one(workspace_of(home), key)
    if as_json:
        echo_json(built.to_json())
        return
    from rich.console import Group

    facts = new_table("", "")
    facts.show_header = False
    spec = built.spec
    rows = [
        ("key", built.key),
        ("path", str(built.path)),
        ("python", f"{built.python_version} ({built.python}, from {built.base_python or '?'})"),
        ("created", f"{built.created_at} (in {built.build_seconds:.1f} s)"),
        ("size", f"{format_size(built.size_bytes)} (files hard-linked from uv's cache are counted in full)"),
        ("source", spec.source or "-"),
        ("requirements", ", ".join(spec.requirements) or "-"),
        ("index options", " ".join(spec.index_options) or "-"),
        ("skipped", ", ".join(spec.skipped) or "-"),
        ("not installed", ", ".join(spec.provided) or "-"),
        ("warnings", "\n".join(built.warnings) or "-"),
    ]
    for label, value in rows:
        facts.add_row(label, value)
    packages = new_table("PACKAGE", "VERSION")
    for name, version in sorted(built.packages.items()):
        packages.add_row(name, version)
    print_renderable(Group(facts, "", packages))


def _one(home: Path, key: str) -> BuiltEnvironment:
    from scorehost.environments import list_environments

    found = [built for built in list_environments(home) if built.key.startswith(key.lower())] if key else []
    if len(found) == 1:
        return found[0]
    if found:
        raise click.ClickException(f"{key!r} starts {len(found)} environment keys; give more of the key")
    raise click.ClickException(f"no environment {key!r}; `scorehost environments list` shows the built ones")


@environments_group.command(
    "prune",
    short_help="Remove the environments no deployment runs in.",
    epilog=examples("scorehost environments prune --dry-run", "scorehost environments prune"),
)
@home_option
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@json_option
@cli_errors
def prune_command(home: Path | None, dry_run: bool, as_json: bool) -> None:
    """Remove the built environments that no deployment runs in, and what killed builds left behind."""
    from scorehost.environments import prune

    workspace = workspace_of(home)
    removed = prune(workspace, set(environments_in_use(workspace)), dry_run=dry_run)
    if as_json:
        echo_json({"dry_run": dry_run, "removed": [built.to_json() for built in removed]})
        return
    verb = "would remove" if dry_run else "removed"
    for built in removed:
        facts = f"Python {built.python_version}, {format_size(built.size_bytes)}, {built.spec.source or 'no source'}"
        click.echo(f"{verb} {built.key} ({facts})")
    total = sum(built.size_bytes for built in removed)
    click.echo(f"{verb} {len(removed)} environment{'' if len(removed) == 1 else 's'}, {format_size(total)}", err=True)
