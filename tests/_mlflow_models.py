"""A small MLflow model made at test time: a scikit-learn classifier on iris-like data, saved with
`mlflow.sklearn.save_model` with a signature (four double columns) and a two-row input example.

Its requirements pin this environment's scikit-learn (and MLflow adds its own version), so the environment built
from them loads the pickle with the versions that wrote it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "ROWS", "load_pyfunc", "save_iris_model", "shared_workspace"]

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]]


def save_iris_model(folder: Path) -> Path:
    """Save the model into `folder` (created; it must not exist) and return it."""
    with warnings.catch_warnings():
        # MLflow and its dependencies warn about their own use of pandas and pydantic: not ours to fix.
        warnings.simplefilter("ignore")
        import mlflow.sklearn
        import numpy as np
        import pandas as pd
        import sklearn
        from mlflow.models import infer_signature
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(7)
        centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
        labels = rng.integers(0, 3, size=90)
        features = pd.DataFrame(centres[labels] + rng.normal(scale=0.3, size=(90, 4)), columns=COLUMNS)
        model = LogisticRegression(max_iter=500).fit(features, labels)
        mlflow.sklearn.save_model(
            model,
            str(folder),
            signature=infer_signature(features, model.predict(features)),
            input_example=features.head(2),
            serialization_format="pickle",
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    return folder


def shared_workspace(base: Path) -> Path:
    """One workspace for the tests of tests/mlflow that build the model's environment (`base`: the session's
    temporary folder): it is built once, and what its first server compiled is there for the next."""
    workspace = base / "mlflow-workspace"
    workspace.mkdir(mode=0o700, exist_ok=True)
    return workspace


def load_pyfunc(folder: Path) -> Any:
    """The model as MLflow's pyfunc flavour loads it: the reference the served answers are compared with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(folder))
