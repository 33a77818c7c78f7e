"""inference-schema parameter types for the built-in scoring script: each converts a request key with
`payloads.py` and is described in Swagger by a sample, as Azure's MLflow script builds them.

The sample is the model's saved input example where it has one (a DataFrame in the split form, an array, named
arrays), else one made from the signature (a row of placeholder values, an array of zeros); without either the key
is any JSON object. Conversion failures are ValueErrors with the payload's message, which scorehost's typed host
answers as a 400 naming the parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from inference_schema.parameter_types.abstract_parameter_type import (  # type: ignore[import-untyped]
    AbstractParameterType,
)

from scorehost.mlflow.mlmodel import ColumnSpec, MLflowModel, Signature, TensorSpec
from scorehost.mlflow.payloads import InputMismatch, model_input, model_params

__all__ = ["RequestPart", "input_type", "output_type", "params_type"]

logger = logging.getLogger("scorehost.mlflow")
_ANY_OBJECT: dict[str, Any] = {"type": "object", "example": {}}
_ALL_VERSIONS = ["2.0", "3.0", "3.1"]
_PLACEHOLDERS: dict[str, Any] = {
    "double": 0.0,
    "float": 0.0,
    "long": 0,
    "integer": 0,
    "boolean": False,
    "string": "",
    "datetime": "2024-01-01T00:00:00",
}


class _Unconverted:
    """No request value is an instance of it, so every value goes through `deserialize_input`."""


class RequestPart(AbstractParameterType):  # type: ignore[misc]
    """A request key converted by `convert`; `described_by` (another parameter type, or None: any object) gives
    its Swagger schema and example."""

    def __init__(self, convert: Callable[[Any], Any], described_by: Any = None) -> None:
        super().__init__(getattr(described_by, "sample_input", None))
        self.sample_data_type = _Unconverted
        self.convert = convert
        self.described_by = described_by

    def deserialize_input(self, input_data: Any) -> Any:
        try:
            return self.convert(input_data)
        except InputMismatch as error:
            raise ValueError(str(error)) from None
        except (TimeoutError, MemoryError):
            raise
        except Exception:  # a library's own words may hold anything: the log gets them, the caller a summary
            logger.warning("The request's input could not be converted for the MLflow model", exc_info=True)
            raise ValueError("it cannot be read as the model's input; the server log has the reason") from None

    def input_to_swagger(self) -> dict[str, Any]:
        if self.described_by is None:
            return dict(_ANY_OBJECT)
        schema: dict[str, Any] = self.described_by.input_to_swagger()
        return schema

    def supported_versions(self) -> list[str]:
        if self.described_by is None:
            return list(_ALL_VERSIONS)
        versions: list[str] = self.described_by.supported_versions()
        return versions


def input_type(model: MLflowModel) -> RequestPart:
    """`input_data`: converted to the model's input, described by its input example."""
    signature = model.signature

    def convert(value: Any) -> Any:
        return model_input(value, signature)

    return RequestPart(convert, _described(_input_sample(model), model))


def params_type(model: MLflowModel) -> RequestPart:
    """`params`: each declared parameter checked against its type; described by the example's params, else the
    declared defaults."""
    specs = model.signature.params if model.signature is not None else ()

    def convert(value: Any) -> Any:
        return model_params(value, specs)

    try:
        _, sample = model.read_input_example()
    except (OSError, ValueError):
        sample = None
    if not isinstance(sample, dict):
        sample = {spec.name: _param_sample(spec.type, spec.default, spec.shape) for spec in specs} or None
    return RequestPart(convert, _standard(sample) if sample else None)


def output_type(model: MLflowModel) -> Any:
    """The prediction's description, from the signature's outputs (nothing converts it)."""
    signature = model.signature
    outputs = signature.outputs if signature is not None else ()
    if not outputs:
        return RequestPart(lambda value: value)
    from inference_schema.parameter_types.pandas_parameter_type import (  # type: ignore[import-untyped]
        PandasParameterType,
    )

    sample = _signature_sample(Signature(inputs=outputs))
    if sample is not None and all(isinstance(spec, ColumnSpec) for spec in outputs):
        return PandasParameterType(sample, enforce_shape=False, orient="records")
    return _described(sample, model) or RequestPart(lambda value: value)


# --- samples -----------------------------------------------------------------------------------------------------


def _input_sample(model: MLflowModel) -> Any:
    """The saved input example as the model takes it (a DataFrame, an array, named arrays), else one made from the
    signature; None without either. A broken example is logged and passed over, as Azure's script does."""
    import numpy as np
    import pandas as pd

    try:
        example, _ = model.read_input_example()
    except (OSError, ValueError) as error:
        logger.warning("the MLflow model's input example cannot be read (%s); the signature describes it", error)
        example = None
    kind = model.example_info.get("type")
    if example is not None:
        try:
            if kind == "dataframe" and isinstance(example, dict) and "data" in example:
                return pd.DataFrame(example["data"], columns=example.get("columns"))
            if kind == "ndarray" and isinstance(example, dict):
                return {str(name): np.asarray(value) for name, value in example.items()}
            if kind == "ndarray":
                return np.asarray(example)
            return example
        except (ValueError, TypeError) as error:
            logger.warning("the MLflow model's input example cannot be used (%s); the signature describes it", error)
    return _signature_sample(model.signature) if model.signature is not None else None


def _signature_sample(signature: Signature) -> Any:
    import pandas as pd

    columns = signature.named_columns
    if columns:
        return pd.DataFrame([{spec.name: _PLACEHOLDERS.get(spec.type, "") for spec in columns}])
    tensors = signature.tensors
    if tensors:
        arrays = {spec.name or "": _zeros(spec) for spec in tensors}
        return arrays[""] if list(arrays) == [""] else arrays
    return None


def _zeros(spec: TensorSpec) -> Any:
    import numpy as np

    shape = tuple(1 if size == -1 else size for size in (spec.shape or (1,)))
    try:
        return np.zeros(shape, dtype=spec.dtype)
    except TypeError:
        return np.zeros(shape)


def _described(sample: Any, model: MLflowModel) -> Any:
    """The inference-schema type that describes `sample` as Azure's script describes it; None for no sample."""
    import numpy as np
    import pandas as pd
    from inference_schema.parameter_types.numpy_parameter_type import (  # type: ignore[import-untyped]
        NumpyParameterType,
    )
    from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

    if sample is None:
        return None
    try:
        if isinstance(sample, pd.DataFrame):
            return PandasParameterType(sample, enforce_shape=False, orient="split")
        if isinstance(sample, np.ndarray):
            return NumpyParameterType(sample, enforce_shape=False)
        if isinstance(sample, dict) and sample and all(isinstance(v, np.ndarray) for v in sample.values()):
            return _standard({name: NumpyParameterType(value, enforce_shape=False) for name, value in sample.items()})
        return _standard(sample)
    except Exception as error:  # an example inference-schema cannot describe: served without one, as on Azure
        logger.warning("the input example of the MLflow model in %s cannot describe the API: %s", model.folder, error)
        return None


def _standard(sample: Any) -> Any:
    from inference_schema.parameter_types.standard_py_parameter_type import (  # type: ignore[import-untyped]
        StandardPythonParameterType,
    )

    return StandardPythonParameterType(sample)


def _param_sample(kind: str, default: Any, shape: tuple[int, ...] | None) -> Any:
    if default is not None:
        return default
    value = _PLACEHOLDERS.get(kind, "")
    return [value] if shape is not None else value
