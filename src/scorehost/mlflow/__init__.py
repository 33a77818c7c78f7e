"""MLflow models served without a scoring script (Azure ML's no-code deployment).

`read_mlmodel()` reads an MLmodel file (flavors, signature, input example) without MLflow; `environment_of_model()`
turns the model's own requirements into an environment scorehost builds; `BUILTIN_SCRIPT` is the scoring script
that serves the model (`entry/score.py`), reading requests as Azure ML's MLflow images do (`payloads.py`).
"""

from __future__ import annotations

from pathlib import Path

from scorehost.mlflow.environment import environment_of_model
from scorehost.mlflow.mlmodel import (
    MLMODEL,
    ColumnSpec,
    MLflowModel,
    ParamSpec,
    Signature,
    TensorSpec,
    find_mlmodel_folder,
    find_mlmodel_path,
    read_mlmodel,
)
from scorehost.mlflow.registered import (
    MLFLOW_MODEL_TYPE,
    MODEL_TYPE_PROPERTY,
    RegisteredMLflowModel,
    find_registered_mlflow_model,
)

__all__ = [
    "BUILTIN_SCRIPT",
    "MLFLOW_MODEL_TYPE",
    "MLMODEL",
    "MODEL_TYPE_PROPERTY",
    "ColumnSpec",
    "MLflowModel",
    "ParamSpec",
    "RegisteredMLflowModel",
    "Signature",
    "TensorSpec",
    "environment_of_model",
    "find_mlmodel_folder",
    "find_mlmodel_path",
    "find_registered_mlflow_model",
    "read_mlmodel",
]

BUILTIN_SCRIPT = Path(__file__).parent / "entry" / "score.py"
"""The scoring script of MLflow models deployed without one; its folder is its code folder."""
