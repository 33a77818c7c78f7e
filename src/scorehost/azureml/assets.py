"""Model and environment YAML files (`model.schema.json`, `environment.schema.json`), checked and read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scorehost.azureml.document import Document, read_document
from scorehost.azureml.fields import ENVIRONMENT, MODEL, check_document
from scorehost.azureml.values import choice, conda_file, text, text_map

__all__ = ["EnvironmentFile", "ModelFile", "read_environment_yaml", "read_model_file"]

MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")


@dataclass(slots=True)
class ModelFile:
    document: Document
    name: str
    path: Path
    version: str | None = None
    type: str = "custom_model"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EnvironmentFile:
    document: Document
    name: str
    conda_file: Path | None
    version: str | None = None
    image: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _name(document: Document, what: str) -> str:
    name = text(document.data.get("name"))
    if not name:
        raise document.error((), f"the {what} has no name: add `name: ...` (or --set name=...)")
    return name


def read_model_file(path: Path, overrides: Sequence[str] = ()) -> ModelFile:
    document = read_document(path, overrides)
    warnings = check_document(document, MODEL, "model")
    data = document.data
    name = _name(document, "model")
    if data.get("path") is None:
        raise document.error((), "the model has no path: add `path:` (the file or folder to register)")
    model_path = (document.folder / text(data["path"])).resolve()
    if not model_path.exists():
        raise document.error(("path",), f"the model path {model_path} does not exist")
    kind = choice(document, ("type",), data.get("type") or "custom_model", MODEL_TYPES)
    version = data.get("version")
    return ModelFile(
        document,
        name,
        model_path,
        None if version is None else text(version),
        kind,
        text(data.get("description")),
        text_map(data.get("tags")),
        text_map(data.get("properties")),
        warnings,
    )


def read_environment_yaml(path: Path, overrides: Sequence[str] = ()) -> EnvironmentFile:
    document = read_document(path, overrides)
    if "dependencies" in document.data or "channels" in document.data:
        raise document.error(
            ("dependencies" if "dependencies" in document.data else "channels",),
            "this is a conda file, and -f takes an Azure ML environment definition: write an environment.yml with "
            f"`name: ...` and `conda_file: {path.name}`, or build the conda file alone with "
            f"`scorehost environments build {path.name}`",
        )
    warnings = check_document(document, ENVIRONMENT, "environment")
    data = document.data
    name = _name(document, "environment")
    image = text(data.get("image")) or None
    conda = data.get("conda_file")
    conda_path: Path | None = None
    if conda is not None:
        conda_path = conda_file(document, ("conda_file",), conda)
    elif image is not None:
        warnings.append(
            f"{path.name}: the environment is only an image ({image}), which scorehost does not run: deployments "
            "using it run in scorehost's own Python environment (add a conda_file to pin libraries)"
        )
    else:
        raise document.error((), "the environment has neither conda_file nor image: add `conda_file: conda.yaml`")
    version = data.get("version")
    return EnvironmentFile(
        document,
        name,
        conda_path,
        None if version is None else text(version),
        image,
        text(data.get("description")),
        text_map(data.get("tags")),
        warnings,
    )
