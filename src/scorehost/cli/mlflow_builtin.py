"""MLflow models without a script, from the command line: `scorehost serve --model NAME` (or `--model-dir DIR`) and
`scorehost deployments create ENDPOINT NAME --model NAME` serve one with the built-in scoring script, in an
environment built from the model's own requirements unless told otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

__all__ = ["MLflowServe", "builtin_deployment", "plan_mlflow_serve"]


@dataclass(frozen=True, slots=True)
class MLflowServe:
    """The built-in script, and the environment to serve it in (None: this interpreter)."""

    script: Path
    environment: dict[str, Any] | None


def plan_mlflow_serve(
    options: dict[str, Any], *, build_environment: bool, environment_file: Path | None = None
) -> MLflowServe | None:
    """How to serve when no script is given and the one model (`--model`, `--model-dir`, or their variables) is an
    MLflow model; None otherwise, leaving serve's own error to say a script is missing. The entry-script variable
    is set to the built-in script, so a server started again in the model's environment serves it too."""
    from scorehost.cli.project_options import echo_warnings
    from scorehost.config import ServeSettings
    from scorehost.errors import ScorehostError
    from scorehost.mlflow import BUILTIN_SCRIPT

    given = {name: value for name, value in options.items() if value is not None and value != ()}
    try:
        settings = ServeSettings(**given)
    except ValidationError:
        return None  # serve reports it, naming the flag
    if settings.entry_script is not None:
        return None
    warnings: list[str] = []
    try:
        if len(settings.models) == 1 and settings.model_dir is None:
            found = _registered(settings.models[0], settings.home, warnings if build_environment else None)
        elif not settings.models and settings.model_dir is not None:
            found = _folder(Path(settings.model_dir), warnings if build_environment else None)
        else:
            return None
    except ScorehostError as error:
        raise click.UsageError(error.message) from None
    if found is None:
        return None
    described, environment = found
    echo_warnings(warnings)
    where = (
        "in an environment built from its requirements"
        if build_environment
        else f"in the environment of {environment_file}"
        if environment_file is not None
        else "in this environment"
    )
    click.echo(f"scorehost: {described} is an MLflow model: served by the built-in scoring script, {where}", err=True)
    os.environ["SCOREHOST_ENTRY_SCRIPT"] = str(BUILTIN_SCRIPT)
    return MLflowServe(BUILTIN_SCRIPT, environment)


def _registered(ref: str, home: Path | None, warnings: list[str] | None) -> tuple[str, dict[str, Any] | None] | None:
    from scorehost.config import WorkspaceSettings
    from scorehost.errors import RegistryError
    from scorehost.mlflow import find_registered_mlflow_model
    from scorehost.registry import Registry

    workspace = WorkspaceSettings() if home is None else WorkspaceSettings(home=home)
    if not workspace.workspace.is_dir():
        return None  # serve names the missing workspace
    with Registry(workspace.workspace) as registry:
        try:
            found = find_registered_mlflow_model(registry, ref)
        except RegistryError as error:
            raise type(error)(f"Cannot serve --model {ref}: {error.message}") from None
        if found is None:
            return None
        environment = found.environment(registry, warnings=warnings) if warnings is not None else None
    return f"--model {ref}" + (f" ({found.ref})" if found.ref != ref else ""), environment


def _folder(folder: Path, warnings: list[str] | None) -> tuple[str, dict[str, Any] | None] | None:
    from scorehost.mlflow import environment_of_model, find_mlmodel_folder

    model = find_mlmodel_folder(folder) if folder.is_dir() else None
    if model is None:
        return None
    environment = environment_of_model(model, warnings=warnings) if warnings is not None else None
    return f"--model-dir {folder}", environment


def builtin_deployment(models: tuple[str, ...], home: Path | None, *, with_environment: bool) -> MLflowServe | None:
    """For `deployments create --model NAME` without --script: the built-in script (and, `with_environment`, the
    environment the model declares) when the one registered model is an MLflow model; None otherwise."""
    from scorehost.cli.project_options import echo_warnings
    from scorehost.cli.workspace import workspace_of
    from scorehost.mlflow import BUILTIN_SCRIPT, find_registered_mlflow_model
    from scorehost.registry import Registry

    workspace = workspace_of(home)
    if len(models) != 1 or not workspace.is_dir():
        return None
    warnings: list[str] = []
    with Registry(workspace) as registry:
        found = find_registered_mlflow_model(registry, models[0])
        if found is None:
            return None
        environment = found.environment(registry, warnings=warnings) if with_environment else None
    echo_warnings(warnings)
    click.echo(f"{found.ref} is an MLflow model: served by the built-in scoring script", err=True)
    return MLflowServe(BUILTIN_SCRIPT, environment)
