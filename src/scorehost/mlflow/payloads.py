"""Requests to an MLflow model, as Azure ML's no-code deployments take them, turned into what `predict()` takes.

`input_data` is one of:
- a DataFrame in pandas' split form: `{"columns": [...], "index": [...], "data": [[...], ...]}` (index optional);
- rows: `[[...], ...]` (a DataFrame in the signature's column order for a column-based model, else an array),
  or records, `[{"column": value, ...}, ...]`;
- named tensors or columns: `{"a": [...], "b": [...]}`;
- any of these as JSON text (Azure's script reads a string with `json.loads`).

With a signature, each column is converted to its declared type as Azure's decorators convert them to the input
example's types (so `1` is a double where a double is declared), and what cannot be is an InputMismatch naming the
column, the type and the value: the caller's 400. The rest of the signature (optional columns, complex types) is
MLflow's to enforce when it predicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from scorehost.mlflow.mlmodel import ColumnSpec, ParamSpec, Signature, TensorSpec

__all__ = ["FORMS", "InputMismatch", "jsonable", "model_input", "model_params"]

FORMS = (
    'send {"input_data": {"columns": [...], "index": [...], "data": [[...]]}} (a DataFrame, split), '
    '{"input_data": [[...], ...]} (rows) or {"input_data": {"name": [...]}} (named tensors)'
)
_FLOATS = {"double": "float64", "float": "float32"}
_INTEGERS = {"long": "int64", "integer": "int32"}
_SHOWN = 40  # characters of a value quoted back in a message


class InputMismatch(ValueError):
    """The request's input does not fit the model's signature, or is no form the model takes."""


def model_input(value: Any, signature: Signature | None, *, label: str = "input_data") -> Any:
    """`value` (the request's `input_data`) as a DataFrame, an ndarray or a dict of ndarrays, fitted to
    `signature`; InputMismatch says what does not fit."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InputMismatch(f"{label} is text that is not JSON: {FORMS}") from None
    columns = signature.named_columns if signature is not None else ()
    tensors = signature.tensors if signature is not None else ()
    if isinstance(value, dict):
        if "columns" in value and "data" in value:
            return _fit_frame(_split_frame(value, label), columns)
        if columns:
            return _fit_frame(_columns_frame(value, label), columns)
        return _named_tensors(value, tensors, label)
    if isinstance(value, list):
        if not value:
            raise InputMismatch(f"{label} holds no rows: {FORMS}")
        if all(isinstance(row, dict) for row in value):
            return _records(value, columns, tensors, label)
        if columns:
            return _fit_frame(_rows_frame(value, columns, label), columns)
        unnamed = tensors[0] if len(tensors) == 1 and tensors[0].name is None else None
        return _tensor(value, unnamed, label)
    raise InputMismatch(f"{label} is a JSON {_json_type(value)}, which no model input is: {FORMS}")


def model_params(value: Any, specs: Sequence[ParamSpec]) -> dict[str, Any] | None:
    """The request's `params`, each one the signature declares converted to its type; None when not given."""
    if value is None:
        return None
    if not isinstance(value, dict):
        declared = ", ".join(f"{spec.name} ({spec.type})" for spec in specs) or "none declared"
        raise InputMismatch(f"params must be a JSON object of the model's parameters ({declared})")
    params = dict(value)
    for spec in specs:
        if spec.name in params and params[spec.name] is not None:
            params[spec.name] = _param(spec, params[spec.name])
    return params


def jsonable(result: Any) -> Any:
    """A prediction as JSON values, as Azure's script sends it: an array as a list, a DataFrame as records, a Series
    as records of its one column; a dict's values (named tensors) likewise."""
    import numpy as np
    import pandas as pd

    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, pd.DataFrame):
        return result.to_dict(orient="records")
    if isinstance(result, pd.Series):
        return pd.DataFrame(result).to_dict(orient="records")
    if isinstance(result, dict):
        return {key: jsonable(item) for key, item in result.items()}
    return result


# --- forms -------------------------------------------------------------------------------------------------------


def _split_frame(value: Mapping[str, Any], label: str) -> Any:
    import pandas as pd

    names, rows, index = value["columns"], value["data"], value.get("index")
    if not isinstance(names, list) or not isinstance(rows, list):
        raise InputMismatch(f"{label}: in the split form, columns and data are arrays: {FORMS}")
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            size = f"{len(row)} values" if isinstance(row, list) else f"a JSON {_json_type(row)}"
            raise InputMismatch(f"{label}: data row {number} holds {size}, for {len(names)} columns")
    if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
        raise InputMismatch(f"{label}: the index must be an array of one label per data row ({len(rows)})")
    return pd.DataFrame(rows, columns=[str(name) for name in names], index=index)


def _columns_frame(value: Mapping[str, Any], label: str) -> Any:
    """`{"a": [1, 2], "b": [3, 4]}` (or one row of scalars) as a DataFrame."""
    import pandas as pd

    if not value:
        raise InputMismatch(f"{label} is an empty object: {FORMS}")
    lengths = {name: len(item) for name, item in value.items() if isinstance(item, list)}
    if not lengths:
        return pd.DataFrame([dict(value)])
    if len(lengths) != len(value) or len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{name}: {lengths.get(name, 'one value')}" for name in value)
        raise InputMismatch(f"{label}: the columns must hold as many values each ({sizes})")
    return pd.DataFrame(dict(value))


def _rows_frame(rows: list[Any], columns: Sequence[ColumnSpec], label: str) -> Any:
    """Rows in the signature's column order; for a one-column model, a list of its values."""
    import pandas as pd

    names = [str(spec.name) for spec in columns]
    if len(names) == 1 and not any(isinstance(row, list) for row in rows):
        return pd.DataFrame({names[0]: rows})
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            size = f"{len(row)} values" if isinstance(row, list) else f"a JSON {_json_type(row)}"
            raise InputMismatch(
                f"{label}: row {number} holds {size}; the model's signature takes {len(names)} columns, in this "
                f"order: {_describe(columns)}"
            )
    return pd.DataFrame(rows, columns=names)


def _records(
    rows: list[dict[str, Any]], columns: Sequence[ColumnSpec], tensors: Sequence[TensorSpec], label: str
) -> Any:
    import pandas as pd

    if tensors and all(spec.name for spec in tensors):
        names = dict.fromkeys(name for row in rows for name in row)
        return _named_tensors({name: [row.get(name) for row in rows] for name in names}, tensors, label)
    return _fit_frame(pd.DataFrame(rows), columns)


def _named_tensors(value: Mapping[str, Any], tensors: Sequence[TensorSpec], label: str) -> dict[str, Any]:
    if not value:
        raise InputMismatch(f"{label} is an empty object: {FORMS}")
    specs = {spec.name: spec for spec in tensors if spec.name}
    missing = [name for name in specs if name not in value]
    if missing:
        raise InputMismatch(
            f"{label}: tensor {missing[0]!r} is missing; the model's signature takes "
            f"{', '.join(repr(name) for name in specs)}"
        )
    return {str(name): _tensor(item, specs.get(name), f"{label}.{name}") for name, item in value.items()}


# --- the signature -----------------------------------------------------------------------------------------------


def _fit_frame(frame: Any, columns: Sequence[ColumnSpec]) -> Any:
    if not columns:
        return frame
    sent = [str(name) for name in frame.columns]
    missing = [spec.name for spec in columns if spec.required and spec.name not in sent]
    if missing:
        raise InputMismatch(
            f"column {missing[0]!r} is missing; the model's signature takes {_describe(columns)}. "
            f"Columns sent: {', '.join(sent) or 'none'}"
        )
    frame.columns = sent
    for spec in columns:
        if spec.name in sent:
            frame[spec.name] = _column(frame[spec.name], spec)
    return frame


def _column(series: Any, spec: ColumnSpec) -> Any:
    """The column converted to its declared type (as Azure converts to its example's dtypes), or InputMismatch."""
    kind = spec.type
    values = [item for item in series.tolist() if not _missing(item)]
    if kind in _FLOATS or kind in _INTEGERS:
        bad = next((item for item in values if not _is_number(item)), None)
        if bad is not None:
            raise _mismatch(spec, series, bad)
        if kind in _FLOATS:
            return series.astype(_FLOATS[kind])
        fraction = next((item for item in values if not float(item).is_integer()), None)
        if fraction is not None:
            raise _mismatch(spec, series, fraction)
        if len(values) < len(series):
            raise InputMismatch(f"column {spec.name!r} ({kind}, whole numbers) holds null; send a number in every row")
        return series.astype(_INTEGERS[kind])
    if kind == "boolean":
        bad = next((item for item in values if not isinstance(item, bool)), None)
        if bad is not None:
            raise _mismatch(spec, series, bad)
        return series if len(values) < len(series) else series.astype(bool)
    if kind == "string":
        bad = next((item for item in values if not isinstance(item, str)), None)
        if bad is not None:
            raise _mismatch(spec, series, bad)
    return series  # datetime, binary, arrays, objects: MLflow checks them when it predicts


def _tensor(value: Any, spec: TensorSpec | None, label: str) -> Any:
    import numpy as np

    try:
        array = np.asarray(value)
    except ValueError:
        raise InputMismatch(f"{label}: its rows must be of one length (a rectangular array)") from None
    if spec is None:
        return array
    target = np.dtype(spec.dtype) if spec.dtype not in ("object", "str", "string") else None
    if target is not None and target.kind in "biuf":
        if array.dtype.kind not in "biuf" or (array.dtype.kind == "b") != (target.kind == "b"):
            raise InputMismatch(
                f"{label} must hold {spec.dtype} values, as the model's signature says; it holds {_kind_of(array)}"
            )
        if target.kind in "iu" and array.dtype.kind == "f" and not bool(np.all(np.mod(array, 1) == 0)):
            raise InputMismatch(f"{label} must hold whole numbers ({spec.dtype}), as the model's signature says")
        array = array.astype(target)
    if spec.shape is not None:
        expected = tuple(spec.shape)
        if array.ndim != len(expected) or any(
            size not in (-1, actual) for size, actual in zip(expected, array.shape, strict=False)
        ):
            raise InputMismatch(
                f"{label} has shape {tuple(array.shape)}; the model's signature takes {expected} (-1: any size)"
            )
    return array


def _param(spec: ParamSpec, value: Any) -> Any:
    if spec.shape is not None:
        if not isinstance(value, list):
            raise InputMismatch(f"params.{spec.name} must be an array of {spec.type} values, as the model declares")
        return [_param_scalar(spec, item) for item in value]
    return _param_scalar(spec, value)


def _param_scalar(spec: ParamSpec, value: Any) -> Any:
    kind = spec.type
    if kind in _FLOATS and _is_number(value):
        return float(value)
    if kind in _INTEGERS and _is_number(value) and float(value).is_integer():
        return int(value)
    if (kind == "boolean" and isinstance(value, bool)) or (kind in ("string", "datetime") and isinstance(value, str)):
        return value
    if kind not in (*_FLOATS, *_INTEGERS, "boolean", "string", "datetime"):
        return value  # binary and newer types: MLflow's to check
    default = "" if spec.default is None else f", default {spec.default!r}"
    wanted = f"{_TYPE_WORDS.get(kind, kind)} ({kind}{default})"
    raise InputMismatch(f"params.{spec.name} must be {wanted}, not {_show(value)}")


# --- messages ----------------------------------------------------------------------------------------------------

_TYPE_WORDS = {
    "double": "a number",
    "float": "a number",
    "long": "a whole number",
    "integer": "a whole number",
    "boolean": "true or false",
    "string": "text",
    "datetime": "a date as text",
}


def _mismatch(spec: ColumnSpec, series: Any, value: Any) -> InputMismatch:
    row = next((label for label, item in series.items() if item is value or item == value), None)
    where = f" (row {row})" if row is not None else ""
    return InputMismatch(
        f"column {spec.name!r} must hold {spec.type} values ({_TYPE_WORDS.get(spec.type, spec.type)}), as the "
        f"model's signature says; it holds {_show(value)}{where}"
    )


def _describe(columns: Sequence[ColumnSpec]) -> str:
    return ", ".join(f"{spec.name} ({spec.type})" for spec in columns)


def _show(value: Any) -> str:
    names = {bool: "a boolean", str: "text", int: "a number", float: "a number", dict: "an object", list: "an array"}
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= _SHOWN else shown[: _SHOWN - 3] + "..."
    return f"{names.get(type(value), type(value).__name__)} ({shown})"


def _kind_of(array: Any) -> str:
    return {"U": "text", "S": "bytes", "O": "mixed values", "b": "booleans", "f": "numbers", "i": "numbers"}.get(
        array.dtype.kind, str(array.dtype)
    )


def _is_number(value: Any) -> bool:
    import numpy as np

    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
