"""A deployment YAML file (`managedOnlineDeployment`, `kubernetesOnlineDeployment`), checked and read.

Only reading happens here: paths are resolved against the file's folder (as `az ml` does) and checked to
exist; registering an inline model or building an environment is `azureml.apply`'s work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorehost.azureml.assets import MODEL_TYPES
from scorehost.azureml.collector import collection_options
from scorehost.azureml.document import Document, FieldPath, dotted, read_document
from scorehost.azureml.fields import DEPLOYMENT, check_document
from scorehost.azureml.instance_types import gpus_of_instance_type
from scorehost.azureml.references import AssetReference, parse_asset_reference
from scorehost.azureml.values import boolean, choice, conda_file, integer, text, text_map
from scorehost.deploy.spec import check_resource_name
from scorehost.errors import InvalidSpec

__all__ = [
    "DeploymentFile",
    "InlineEnvironment",
    "InlineModel",
    "Probe",
    "RequestSettings",
    "ScaleSettings",
    "read_deployment_file",
]

_TYPES = ("managed", "kubernetes")


@dataclass(frozen=True, slots=True)
class InlineModel:
    """`model: {path: ...}`: files to register (content-addressed) before the deployment starts."""

    path: Path
    name: str | None = None
    version: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    type: str = "custom_model"  # or mlflow_model: kept as the property azureml.model_type


@dataclass(frozen=True, slots=True)
class InlineEnvironment:
    """`environment: {conda_file: ..., image: ...}`."""

    conda_file: Path | None  # None: an image alone, which scorehost cannot build
    image: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class RequestSettings:
    request_timeout_ms: int | None = None
    max_concurrent_requests_per_instance: int | None = None
    max_queue_wait_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """A liveness or readiness probe, Azure's defaults filled in."""

    initial_delay: int = 10
    period: int = 10
    timeout: int = 2
    success_threshold: int = 1
    failure_threshold: int = 30

    @property
    def budget_seconds(self) -> int:
        """How long Azure waits before it gives up on a container that fails this probe."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass(frozen=True, slots=True)
class ScaleSettings:
    type: str = "default"  # or "target_utilization"
    min_instances: int | None = None
    max_instances: int | None = None
    polling_interval: int | None = None
    target_utilization_percentage: int | None = None


@dataclass(slots=True)
class DeploymentFile:
    """What a deployment YAML declares, checked, paths absolute."""

    document: Document
    endpoint: str
    name: str
    kind: str  # managed or kubernetes
    code_dir: Path
    script: Path  # relative to code_dir
    model: AssetReference | InlineModel | None = None
    environment: AssetReference | InlineEnvironment | None = None
    variables: dict[str, str] = field(default_factory=dict)
    instances: int = 1
    request: RequestSettings = field(default_factory=RequestSettings)
    liveness: Probe | None = None
    readiness: Probe | None = None
    scale: ScaleSettings | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    gpus: float = 0.0  # GPUs per instance: resources' gpu or nvidia.com/gpu, else those of instance_type's VM size
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    app_insights: bool = False
    collection: dict[str, Any] = field(default_factory=dict)  # data_collector as serve options (collect, ...)
    follow_model: bool = False  # scorehost's own field: scorehost.follow_model
    # No code_configuration: scorehost's built-in scoring script serves the (MLflow) model, as Azure ML's no-code
    # deployment does; code_dir and script are then the built-in script's (scorehost.mlflow.BUILTIN_SCRIPT).
    builtin_script: bool = False
    warnings: list[str] = field(default_factory=list)
    # About building the environment on this machine: what `deployments create -f` tells, not `scorehost k8s -f`.
    environment_warnings: list[str] = field(default_factory=list)


def read_deployment_file(path: Path, overrides: Sequence[str] = ()) -> DeploymentFile:
    """Read and check `path`; ProjectFileError names the file, the line and the fix."""
    document = read_document(path, overrides)
    instance_type = document.data.get("instance_type")
    gpu_size = isinstance(instance_type, str) and bool(gpus_of_instance_type(instance_type))
    used = [("instance_type",)] if gpu_size else []  # its GPUs are used; any other size means nothing here
    warnings = check_document(document, DEPLOYMENT, "online deployment", used=used)
    data = document.data
    kind = _kind(document)
    names = []
    for key, what in (("name", "deployment"), ("endpoint_name", "endpoint")):
        value = text(data.get(key))
        if not value:
            raise document.error((), f"the deployment has no {key}: add `{key}: ...` (or --set {key}=...)")
        try:
            names.append(check_resource_name(what, value))
        except InvalidSpec as error:
            raise document.error((key,), error.message) from None
    code = _code(document)
    code_dir, script = code if code is not None else _builtin_script()
    deployment = DeploymentFile(document, names[1], names[0], kind, code_dir, script, warnings=warnings)
    deployment.model = _model(document)
    if code is None:
        _check_no_code(deployment)
    deployment.environment = _environment(document, deployment.environment_warnings)
    deployment.variables = text_map(data.get("environment_variables"))
    if data.get("instance_count") is not None:
        deployment.instances = integer(document, ("instance_count",), data["instance_count"], 1, 1024)
    deployment.request = RequestSettings(
        **{
            key: integer(document, ("request_settings", key), value, 1, 24 * 3600 * 1000)
            for key, value in (data.get("request_settings") or {}).items()
            if value is not None
        }
    )
    deployment.liveness = _probe(document, "liveness_probe")
    deployment.readiness = _probe(document, "readiness_probe")
    deployment.scale = _scale(document)
    deployment.resources = dict(data.get("resources") or {})
    deployment.gpus = _gpus(document)
    deployment.description = text(data.get("description"))
    deployment.tags = text_map(data.get("tags"))
    deployment.app_insights = boolean(data.get("app_insights_enabled") or False)
    deployment.collection = collection_options(document, deployment.warnings)
    deployment.follow_model = boolean((data.get("scorehost") or {}).get("follow_model") or False)
    if deployment.follow_model and not (isinstance(deployment.model, AssetReference) and deployment.model.follows):
        raise document.error(
            ("scorehost", "follow_model"),
            "follow_model needs a model given by a label (model: azureml:NAME@latest or azureml:NAME@ALIAS)",
        )
    return deployment


def _kind(document: Document) -> str:
    declared = document.data.get("type")
    if declared:
        return choice(document, ("type",), declared, _TYPES)
    schema = text(document.data.get("$schema")).lower()
    return "kubernetes" if "kubernetesonlinedeployment" in schema else "managed"


def _code(document: Document) -> tuple[Path, Path] | None:
    """The code folder and the script in it; None when the file names neither (an MLflow model's no-code
    deployment, checked by `_check_no_code`)."""
    data = document.data
    configuration = data.get("code_configuration") or {}
    code = configuration.get("code", data.get("code_path"))
    script = configuration.get("scoring_script", data.get("scoring_script"))
    at: FieldPath = ("code_configuration",) if configuration else ()
    if code is None and script is None and not configuration:
        return None
    if code is None or script is None:
        raise document.error(
            at,
            "the deployment has no scoring script: add code_configuration with code (the folder) and "
            "scoring_script (the file in it, e.g. score.py)",
        )
    code_dir = (document.folder / text(code)).resolve()
    if not code_dir.is_dir():
        raise document.error((*at, "code"), f"the code folder {code_dir} does not exist")
    script_path = (code_dir / text(script)).resolve()
    if not script_path.is_relative_to(code_dir):
        raise document.error((*at, "scoring_script"), f"the scoring script {script_path} is outside {code_dir}")
    if not script_path.is_file():
        raise document.error((*at, "scoring_script"), f"the scoring script {script_path} does not exist")
    return code_dir, script_path.relative_to(code_dir)


def _builtin_script() -> tuple[Path, Path]:
    from scorehost.mlflow import BUILTIN_SCRIPT

    return BUILTIN_SCRIPT.parent, Path(BUILTIN_SCRIPT.name)


def _check_no_code(deployment: DeploymentFile) -> None:
    """A deployment without code_configuration serves an MLflow model with scorehost's built-in scoring script;
    an inline model is checked here, a registered one when the registry is at hand (azureml.apply)."""
    from scorehost.errors import InvalidModelReference
    from scorehost.mlflow import MLFLOW_MODEL_TYPE, find_mlmodel_folder

    document, model = deployment.document, deployment.model
    deployment.builtin_script = True
    no_script = (
        "the deployment has no scoring script: add code_configuration with code (the folder) and scoring_script "
        "(the file in it, e.g. score.py), or deploy an MLflow model, which needs none (model: {type: mlflow_model, "
        "path: FOLDER}, the folder MLflow saved with its MLmodel file)"
    )
    if model is None:
        raise document.error((), no_script)
    if not isinstance(model, InlineModel):
        return
    try:
        folder = find_mlmodel_folder(model.path) if model.path.is_dir() else None
    except InvalidModelReference as error:
        raise document.error(("model", "path"), error.message) from None
    if folder is None and model.type == MLFLOW_MODEL_TYPE:
        raise document.error(
            ("model", "path"), f"{model.path} holds no MLmodel file: give the folder MLflow saved the model in"
        )
    if folder is None:
        raise document.error((), no_script)
    if model.type != MLFLOW_MODEL_TYPE:
        deployment.warnings.append(
            f"{document.path.name}: the model holds an MLflow model ({folder.name}/MLmodel), served by scorehost's "
            "built-in scoring script; az ml would ask for model.type: mlflow_model"
        )


def _reference(document: Document, at: FieldPath, value: str) -> AssetReference:
    try:
        return parse_asset_reference(value)
    except ValueError as error:
        raise document.error(at, str(error)) from None


def _model(document: Document) -> AssetReference | InlineModel | None:
    value = document.data.get("model")
    if value is None:
        return None
    if isinstance(value, str):
        return _reference(document, ("model",), value)
    if value.get("path") is None:
        raise document.error(("model",), "an inline model needs a path: (the file or folder to register)")
    path = (document.folder / text(value["path"])).resolve()
    if not path.exists():
        raise document.error(("model", "path"), f"the model path {path} does not exist")
    version = value.get("version")
    return InlineModel(
        path,
        text(value.get("name")) or None,
        None if version is None else text(version),
        text(value.get("description")),
        text_map(value.get("tags")),
        choice(document, ("model", "type"), value.get("type") or "custom_model", MODEL_TYPES),
    )


def _environment(document: Document, warnings: list[str]) -> AssetReference | InlineEnvironment | None:
    value = document.data.get("environment")
    if value is None:
        return None
    if isinstance(value, str):
        return _reference(document, ("environment",), value)
    image = text(value.get("image")) or None
    conda = value.get("conda_file")
    if conda is None:
        if image is not None:
            warnings.append(
                f"{document.path.name}: environment.image {image} is a container image, which scorehost does not "
                "run: the deployment runs in scorehost's own Python environment (add a conda_file to pin libraries)"
            )
        return InlineEnvironment(None, image, text(value.get("name")) or None)
    conda_path = conda_file(document, ("environment", "conda_file"), conda)
    if image is not None:
        warnings.append(
            f"{document.path.name}: environment.image {image} is not used: scorehost builds the conda_file's "
            "packages into a Python environment of their own, without a container"
        )
    return InlineEnvironment(conda_path, image, text(value.get("name")) or None)


def _gpus(document: Document) -> float:
    """GPUs per instance: resources' (a request before a limit, as for CPUs), else instance_type's VM size's.
    A fraction shares one GPU (Ray places it so); above one, GPUs are whole devices."""
    resources = document.data.get("resources") or {}
    for part in ("requests", "limits"):
        for key in ("nvidia.com/gpu", "gpu"):
            value = (resources.get(part) or {}).get(key)
            if value is not None:
                return _gpu_amount(document, ("resources", part, key), value)
    instance_type = document.data.get("instance_type")
    return float(gpus_of_instance_type(text(instance_type)) or 0) if instance_type else 0.0


def _gpu_amount(document: Document, at: FieldPath, value: Any) -> float:
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m?)\s*", str(value))
    if isinstance(value, bool) or not found:
        raise document.error(at, f"{dotted(at)} must be a number of GPUs (1, 2, or 0.5 to share one), not {value!r}")
    amount = float(found[1]) / (1000 if found[2] else 1)
    if amount > 1024 or (amount > 1 and not amount.is_integer()):
        raise document.error(
            at,
            f"{dotted(at)} {value} is not a GPU count: give a whole number of GPUs (at most 1024), or a fraction "
            "below 1 to share one",
        )
    return amount


def _probe(document: Document, key: str) -> Probe | None:
    value = document.data.get(key)
    if not value:
        return None
    fields = {
        name: integer(document, (key, name), number, 0 if name == "initial_delay" else 1, 3600)
        for name, number in value.items()
        if name in Probe.__dataclass_fields__ and number is not None
    }
    return Probe(**fields)


def _scale(document: Document) -> ScaleSettings | None:
    value = document.data.get("scale_settings")
    if not value:
        return None
    kind = choice(
        document, ("scale_settings", "type"), value.get("type") or "default", ("default", "target_utilization")
    )
    numbers = {
        name: integer(document, ("scale_settings", name), number, 0 if name == "min_instances" else 1, 100_000)
        for name, number in value.items()
        if name != "type" and number is not None
    }
    scale = ScaleSettings(kind, **numbers)
    if (
        scale.min_instances is not None
        and scale.max_instances is not None
        and scale.min_instances > scale.max_instances
    ):
        raise document.error(("scale_settings",), "min_instances is above max_instances")
    return scale
