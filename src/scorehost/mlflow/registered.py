"""MLflow models in scorehost's registry: whether a version is one (its `azureml.model_type` property, or an MLmodel
file among its files), and its environment, read from copies of its metadata files (the store keeps blobs by
digest, without their names)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from scorehost.errors import InvalidModelReference
from scorehost.mlflow.environment import environment_of_model, metadata_files
from scorehost.mlflow.mlmodel import find_mlmodel_path

if TYPE_CHECKING:
    from scorehost.registry import Registry

__all__ = ["MLFLOW_MODEL_TYPE", "MODEL_TYPE_PROPERTY", "RegisteredMLflowModel", "find_registered_mlflow_model"]

MODEL_TYPE_PROPERTY = "azureml.model_type"  # where Azure ML's model `type:` is kept (azureml/apply.py)
MLFLOW_MODEL_TYPE = "mlflow_model"


@dataclass(frozen=True, slots=True)
class RegisteredMLflowModel:
    """A registered version that is an MLflow model: its reference and the folder of its MLmodel file inside the
    version folder ("" when the version is the MLflow model's files themselves)."""

    ref: str
    folder: str
    declared: bool  # registered with type mlflow_model

    def environment(self, registry: Registry, *, warnings: list[str]) -> dict[str, Any]:
        """The environment the model's own files declare (see `environment_of_model`)."""
        scratch = Path(tempfile.mkdtemp(prefix="scorehost-mlflow-"))
        try:
            wanted = {str(PurePosixPath(self.folder, name)) if self.folder else name: name for name in metadata_files()}
            for stored in registry.files(self.ref):
                if stored.path in wanted:
                    shutil.copyfile(registry.store.path_of(stored.digest), scratch / wanted[stored.path])
            return environment_of_model(scratch, warnings=warnings, source=f"the MLflow model {self.ref}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def find_registered_mlflow_model(registry: Registry, ref: str) -> RegisteredMLflowModel | None:
    """The MLflow model `ref` names, or None for another kind of model; InvalidModelReference for a version
    registered as an mlflow_model without an MLmodel file, or holding several."""
    version = registry.get(ref)
    declared = version.properties.get(MODEL_TYPE_PROPERTY) == MLFLOW_MODEL_TYPE
    folder = find_mlmodel_path([stored.path for stored in registry.files(version.ref)])
    if folder is None:
        if declared:
            raise InvalidModelReference(
                f"{version.ref} is registered as an mlflow_model, and holds no MLmodel file: register the folder "
                "that MLflow saved (mlflow.<flavor>.save_model), which holds one"
            )
        return None
    return RegisteredMLflowModel(version.ref, folder, declared)
