"""Azure ML YAML files turned into what scorehost declares: a deployment's fields for the control plane (its
inline model registered, its environment read and pinned), an endpoint's, a model's, an environment's.

Everything that can be refused is refused here, before the control plane is asked for anything, so a bad file
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scorehost.azureml.assets import EnvironmentFile, ModelFile
from scorehost.azureml.deployment import DeploymentFile, InlineEnvironment, InlineModel
from scorehost.azureml.references import AssetReference
from scorehost.errors import ScorehostError, UnknownResource

__all__ = [
    "QUEUE_THREADS",
    "DeploymentRequest",
    "deployment_request",
    "environment_of_file",
    "register_environment_file",
    "register_model_file",
]

Progress = Callable[[str], None]
QUEUE_THREADS = 4  # spare threads per worker that hold requests waiting under max_queue_wait_ms


@dataclass(slots=True)
class DeploymentRequest:
    """The control plane's deployment fields for one YAML file, and what the user should be told."""

    endpoint: str
    name: str
    fields: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    model: str | None = None  # the registry reference it serves, e.g. `5d1c…:1` for an inline model
    gpus: float = 0.0  # GPUs per instance the file asks for (its resources, or its instance_type's VM size)

    def ray_options(self) -> dict[str, Any]:
        """The Ray options the file implies, for when it runs on Ray: its GPUs as `num_gpus` per replica. Ray then
        places the replicas on GPUs, so the serve option `devices`, which spreads a local deployment's worker
        processes over this machine's GPUs, is taken out of `fields`."""
        if not self.gpus:
            return {}
        options = self.fields.get("serve_options")
        if isinstance(options, dict):
            options.pop("devices", None)
        return {"num_gpus": self.gpus}


def environment_of_file(conda_or_requirements: Path, *, nearest_python: bool, warnings: list[str]) -> dict[str, Any]:
    """The environment specification of a conda or requirements file, its Python pinned to an interpreter that
    exists here (so the control plane builds exactly what was checked)."""
    from scorehost.environments import choose_python, read_environment_file

    spec = read_environment_file(conda_or_requirements)
    warnings.extend(spec.warnings())
    chosen = choose_python(spec.python, nearest=nearest_python)
    asked = spec.python
    if asked is not None and asked[:1].isdigit() and not f"{chosen.version}.".startswith(f"{asked}."):
        warnings.append(
            f"{conda_or_requirements.name}: asks for Python {asked}; built with {chosen.version} (--nearest-python)"
        )
    data = spec.to_json()
    data["python"] = chosen.minor_version
    return data


def _model(home: Path, deployment: DeploymentFile, progress: Any) -> str | None:
    model = deployment.model
    if model is None:
        return None
    if isinstance(model, AssetReference):
        from scorehost.registry import Registry

        with Registry(home) as registry:  # refused now if it does not exist, not when the deployment starts
            registry.resolve(model.registry_ref)
        return model.registry_ref
    return _register_inline(home, model, progress)


def _register_inline(home: Path, model: InlineModel, progress: Any) -> str:
    """Register an inline model as Azure ML does: content-addressed, named by its content's digest unless it has a
    name, so deploying the same files again registers nothing new."""
    from scorehost.registry import Registry

    with Registry(home) as registry:
        if model.name is None:
            # Hashed once here for the name and once more by the store, which keeps one copy of each blob.
            digest = _content_digest(model.path)
            name = digest[:32]
        else:
            name = model.name
        version = registry.register(
            name,
            model.path,
            description=model.description,
            tags=dict(model.tags),
            properties={"azureml.model_type": model.type} if model.type != "custom_model" else None,
            progress=progress,
            reuse_identical=True,
        )
    return f"{version.name}:{version.version}"


def _mlflow_environment(home: Path, deployment: DeploymentFile, ref: str | None) -> dict[str, Any] | None:
    """For a deployment whose file gives no environment and that serves an MLflow model (without a scoring script,
    or declared `type: mlflow_model`), the environment the model's own files declare. Without a scoring script, a
    registered model must be an MLflow model (an inline one was checked when the file was read)."""
    from scorehost.errors import InvalidModelReference
    from scorehost.mlflow import MLFLOW_MODEL_TYPE, environment_of_model, find_mlmodel_folder
    from scorehost.mlflow import find_registered_mlflow_model as find_registered

    model, warnings = deployment.model, deployment.environment_warnings
    if isinstance(model, InlineModel):
        if deployment.environment is not None or not (deployment.builtin_script or model.type == MLFLOW_MODEL_TYPE):
            return None
        folder = find_mlmodel_folder(model.path) if model.path.is_dir() else None
        return environment_of_model(folder, warnings=warnings) if folder is not None else None
    if ref is None:
        return None
    from scorehost.registry import Registry

    with Registry(home) as registry:
        found = find_registered(registry, ref)
        if found is None and deployment.builtin_script:
            raise InvalidModelReference(
                f"{ref} is not an MLflow model (it holds no MLmodel file), and the deployment has no scoring script: "
                "add code_configuration with code (the folder) and scoring_script (e.g. score.py)"
            )
        if found is None or deployment.environment is not None or not (deployment.builtin_script or found.declared):
            return None
        return found.environment(registry, warnings=warnings)


def _content_digest(path: Path) -> str:
    """sha256 over the relative paths and contents of a file or folder, the same for the same files anywhere."""
    import hashlib

    from scorehost.registry.sources import collect_sources

    _, _, sources = collect_sources(path)
    outer = hashlib.sha256()
    for source in sorted(sources, key=lambda s: s.path):
        inner = hashlib.sha256()
        with open(source.source, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(f"{source.path}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def _environment(home: Path, deployment: DeploymentFile, nearest_python: bool) -> dict[str, Any] | None:
    environment = deployment.environment
    if environment is None:
        return None
    if isinstance(environment, InlineEnvironment):
        if environment.conda_file is None:
            return None
        return environment_of_file(
            environment.conda_file, nearest_python=nearest_python, warnings=deployment.environment_warnings
        )
    from scorehost.environments.registered import EnvironmentRegistry

    with EnvironmentRegistry(home) as registry:
        try:
            registered = registry.get(environment.name, environment.version, label=environment.label)
        except UnknownResource as error:
            raise deployment.document.error(("environment",), error.message) from None
    if registered.spec is None:
        deployment.environment_warnings.append(
            f"environment {environment} is only an image ({registered.image}): the deployment runs in "
            "scorehost's own Python environment"
        )
    return dict(registered.spec) if registered.spec is not None else None


def deployment_request(
    deployment: DeploymentFile,
    home: Path,
    *,
    nearest_python: bool = False,
    progress: Any = None,
) -> DeploymentRequest:
    """The control plane's fields for `deployment`: its inline model registered, its environment read."""
    fields: dict[str, Any] = {
        "script": str(deployment.script),
        "code_dir": str(deployment.code_dir),
        "instances": deployment.instances,
        "environment": dict(deployment.variables),
        "description": deployment.description,
        "tags": dict(deployment.tags),
    }
    # The warnings list is the file's own: what reading the environment and the scale settings add lands in it.
    request = DeploymentRequest(deployment.endpoint, deployment.name, fields, deployment.warnings)
    try:
        request.model = _model(home, deployment, progress)
        mlflow_environment = _mlflow_environment(home, deployment, request.model)
    except ScorehostError as error:
        raise deployment.document.error(("model",), error.message) from None
    fields["models"] = [request.model] if request.model else []
    fields["follow_models"] = deployment.follow_model
    fields["python_environment"] = mlflow_environment or _environment(home, deployment, nearest_python)
    request.warnings = [*deployment.warnings, *deployment.environment_warnings]
    request.gpus = deployment.gpus
    fields["serve_options"] = _serve_options(deployment)
    fields["azureml"] = _kept(deployment)
    scale = deployment.scale
    if scale is not None and scale.type == "target_utilization":
        floor = scale.min_instances or 1
        fields["instances"] = max(floor, 1)
        request.warnings.append(
            f"{deployment.document.path.name}: scale_settings target_utilization autoscales on Ray "
            f"(`scorehost ray config -f`); here it runs min_instances ({fields['instances']}) instances"
        )
    return request


def _serve_options(deployment: DeploymentFile) -> dict[str, Any]:
    """Azure ML's request settings and probes as `scorehost serve` settings (docs/azureml.md has the table)."""
    options: dict[str, Any] = dict(deployment.collection)
    if deployment.gpus:
        options.setdefault("devices", "auto")  # each worker process on GPUs of its own (docs/gpu.md)
    if deployment.request.request_timeout_ms is not None:
        options["timeout"] = deployment.request.request_timeout_ms / 1000
    if deployment.request.max_queue_wait_ms is not None:
        options["max_queue_wait"] = deployment.request.max_queue_wait_ms / 1000
        # Waiting requests are timed only on a thread of their own: without spare threads they would wait in the
        # HTTP layer, untimed, and never be sent away.
        options["spare_threads"] = QUEUE_THREADS
    if deployment.readiness is not None:
        # Azure gives a container initial_delay + period x failure_threshold to become ready: init()'s budget.
        options["init_timeout"] = float(max(deployment.readiness.budget_seconds, 1))
    if deployment.liveness is not None:
        # A worker that stops answering its supervisor for as long as Azure's liveness probe would tolerate.
        liveness = deployment.liveness
        options["heartbeat_timeout"] = float(liveness.period * liveness.failure_threshold + liveness.timeout)
    return options


def _kept(deployment: DeploymentFile) -> dict[str, Any]:
    """The settings as checked and typed (a `--set` gives text; Azure stores numbers), for the features that read
    them: probes, request and scale settings, resources, data collection."""
    data = deployment.document.data
    kept: dict[str, Any] = {"type": deployment.kind, "app_insights_enabled": deployment.app_insights}
    typed = {
        "request_settings": deployment.request,
        "liveness_probe": deployment.liveness,
        "readiness_probe": deployment.readiness,
        "scale_settings": deployment.scale,
    }
    for key, value in typed.items():
        if value is not None and data.get(key) is not None:
            kept[key] = {name: number for name, number in asdict(value).items() if number is not None}
    for key in ("resources", "data_collector", "properties"):
        if data.get(key) is not None:
            kept[key] = data[key]
    for key in ("model", "environment"):
        if isinstance(data.get(key), str):
            kept[key] = data[key]  # as declared: a label (azureml:m@production) to follow, say
    return kept


def register_model_file(model: ModelFile, home: Path, *, progress: Any = None) -> Any:
    """Register a model YAML's files: the next version of its name, or the one holding the same files when the
    file gives a version that already exists with those contents."""
    from scorehost.registry import Registry

    properties = dict(model.properties)
    if model.type != "custom_model":
        properties.setdefault("azureml.model_type", model.type)
    with Registry(home) as registry:
        version = registry.register(
            model.name,
            model.path,
            description=model.description,
            tags=model.tags,
            properties=properties,
            progress=progress,
            reuse_identical=model.version is not None,
        )
    if model.version is not None and str(version.version) != model.version:
        model.warnings.append(
            f"{model.document.path.name}: version {model.version} was asked for; scorehost numbers versions itself "
            f"and registered {model.name}:{version.version}"
        )
    return version


def register_environment_file(environment: EnvironmentFile, home: Path, *, nearest_python: bool = False) -> Any:
    from scorehost.environments.registered import EnvironmentRegistry

    spec = (
        environment_of_file(environment.conda_file, nearest_python=nearest_python, warnings=environment.warnings)
        if environment.conda_file is not None
        else None
    )
    with EnvironmentRegistry(home) as registry:
        return registry.register(
            environment.name,
            environment.version,
            spec,
            image=environment.image or "",
            description=environment.description,
            tags=environment.tags,
        )
