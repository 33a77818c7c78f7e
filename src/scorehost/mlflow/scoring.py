"""The MLflow model that the built-in scoring script serves: found under AZUREML_MODEL_DIR, loaded with
`mlflow.pyfunc.load_model`, asked to predict, its prediction made JSON.

MLflow is imported only by `load()` (from init()), so a missing MLflow is init()'s failure with the package to
add, and reading the MLmodel file for the decorators costs no MLflow import.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

from scorehost.mlflow.mlmodel import MLflowModel, find_mlmodel_folder, read_mlmodel
from scorehost.mlflow.payloads import jsonable
from scorehost.mlflow.schema_types import RequestPart, input_type, output_type, params_type

__all__ = ["ServedModel"]

logger = logging.getLogger("scorehost.mlflow")


class ServedModel:
    """One MLflow model: its MLmodel file (read at once) and, after `load()`, its pyfunc model."""

    def __init__(self, model: MLflowModel) -> None:
        self.model = model
        self._pyfunc: Any = None
        self._takes_params = True
        self._mlflow_error: type[BaseException] = Exception

    @classmethod
    def from_environment(cls) -> ServedModel:
        """The MLflow model under AZUREML_MODEL_DIR: that folder, or the shallowest below it with an MLmodel file
        (MLFLOW_MODEL_FOLDER, as on Azure ML, names it outright)."""
        root = os.environ.get("AZUREML_MODEL_DIR")
        if not root:
            raise RuntimeError(
                "AZUREML_MODEL_DIR is not set: serve the MLflow model with `scorehost serve --model NAME[:VERSION]` "
                "or `--model-dir FOLDER` (the folder with its MLmodel file)"
            )
        named = os.environ.get("MLFLOW_MODEL_FOLDER") or None
        folder = find_mlmodel_folder(Path(root), environ_folder=named)
        if folder is None:
            where = f"{root}/{named}" if named else f"{root} (or a folder below it)"
            raise FileNotFoundError(
                f"no MLmodel file in {where}: the built-in scoring script serves MLflow models; give the deployment "
                "a scoring script (code_configuration) for any other model"
            )
        return cls(read_mlmodel(folder))

    def input_type(self) -> RequestPart:
        return input_type(self.model)

    def params_type(self) -> RequestPart:
        return params_type(self.model)

    def output_type(self) -> Any:
        return output_type(self.model)

    def load(self) -> None:
        """Load the model with MLflow; ModuleNotFoundError names the package to add when MLflow is missing."""
        try:
            import mlflow.pyfunc
            from mlflow.exceptions import MlflowException
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(
                f"serving an MLflow model needs MLflow, and importing it failed ({error}): add mlflow-skinny to the "
                "environment, or let scorehost build the model's own environment (`scorehost serve` without "
                "--env-manager local; a deployment without an environment)"
            ) from error
        self._mlflow_error = MlflowException
        self._pyfunc = mlflow.pyfunc.load_model(str(self.model.folder))
        try:
            self._takes_params = "params" in inspect.signature(self._pyfunc.predict).parameters
        except (TypeError, ValueError):
            self._takes_params = False
        signature = self.model.signature
        shape = f"; signature: {signature.describe_inputs()}" if signature is not None and signature.inputs else ""
        logger.info(
            "serving the MLflow model in %s with scorehost's built-in scoring script (%s; loaded with MLflow %s%s)",
            self.model.folder,
            self.model.describe(),
            getattr(mlflow, "__version__", "?"),
            shape,
        )

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The prediction as JSON values; MLflow refusing the input against the signature is a 400 answer."""
        if self._pyfunc is None:
            raise RuntimeError("the MLflow model is not loaded: init() must run before run()")
        try:
            if self._takes_params:
                result = self._pyfunc.predict(data, params=params)
            else:
                if params:
                    logger.warning("params ignored: this MLflow's predict() takes none (MLflow 2.6 or newer does)")
                result = self._pyfunc.predict(data)
        except self._mlflow_error as error:
            status = getattr(error, "get_http_status_code", lambda: 500)()
            if status != 400:
                raise
            # MLflow's message quotes the data and the schema: the log has it, the caller gets what to send.
            logger.warning("MLflow refused the input: %s", error)
            return _refused(self.model)
        answer = jsonable(result)
        _collect(data, answer)
        return answer


def _collect(data: Any, answer: Any) -> None:
    """`model_inputs` and `model_outputs`, as Azure's MLflow script collects them, when data collection is on
    (`--collect-dir`, a deployment's data_collector)."""
    from scorehost.collection.session import active

    if active() is None:
        return
    from scorehost.compat.monitoring import Collector

    context = Collector(name="model_inputs").collect(data)
    Collector(name="model_outputs").collect(answer, context)


def _refused(model: MLflowModel) -> Any:
    from scorehost.compat.aml_response import AMLResponse

    signature = model.signature
    expected = signature.describe_inputs() if signature is not None and signature.inputs else "see /swagger.json"
    message = (
        "The input does not match the MLflow model's signature (the server log has MLflow's reason). "
        f"The model takes: {expected}."
    )
    return AMLResponse({"message": message}, 400, json_str=True)
