"""scorehost's scoring script for MLflow models deployed without one (Azure ML's "no-code deployment").

It serves the MLflow model under AZUREML_MODEL_DIR as Azure ML's MLflow images do: `input_data` in pandas' split
form, as rows or as named tensors, optional `params`, the prediction as JSON. To customize it, copy this file
beside your deployment as score.py and give it as code_configuration.scoring_script: it keeps working, and
`ServedModel` (scorehost.mlflow.scoring) does the reading, checking and predicting.
"""

from __future__ import annotations

from typing import Any

from inference_schema.schema_decorators import input_schema, output_schema  # type: ignore[import-untyped]

from scorehost.mlflow.scoring import ServedModel

# Read now (MLmodel only: MLflow is imported by init()), so the decorators below carry the model's input example.
served = ServedModel.from_environment()


def init() -> None:
    served.load()


@input_schema("input_data", served.input_type())  # type: ignore[untyped-decorator]
@input_schema("params", served.params_type(), optional=True)  # type: ignore[untyped-decorator]
@output_schema(served.output_type())  # type: ignore[untyped-decorator]
def run(input_data: Any, params: dict[str, Any] | None = None) -> Any:
    return served.predict(input_data, params)
