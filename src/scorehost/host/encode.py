"""Encode what `run()` returned as a response body: JSON for data, numpy and pandas included.

NaN and the infinities are sent as Python's `json` writes them (`NaN`, `Infinity`, `-Infinity`), as the
reference server sends them and its clients read them; `nan_as_null` writes `null` instead, for strict JSON
parsers. orjson writes every non-finite float as `null`, so a body it made without any `null` in it had none
and goes out as it is: only a body with a `null` is checked for non-finite values, and re-encoded if it has
them.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import math
from typing import Any

import orjson

from scorehost.errors import ResultNotSerializable

__all__ = ["JSON", "OCTET_STREAM", "encode_result"]

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def encode_result(value: object, *, nan_as_null: bool = False) -> tuple[bytes, str]:
    """Return (body, content type). `None` is `{}` and a `str` is a JSON string, as on the reference."""
    if value is None:
        return b"{}", JSON
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), OCTET_STREAM
    try:
        body = orjson.dumps(value, default=_convert, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        reason = _reason(exc)
    else:
        if nan_as_null or b"null" not in body or not _has_non_finite(value):
            return body, JSON
        reason = ""
    # Non-finite floats, integers beyond 64 bits and lone surrogates (valid in JSON text, so a script may return
    # what it read): only the standard library writes them, the surrogates as \ud800 escapes, as the reference does.
    dumps = functools.partial(json.dumps, value, default=_convert, separators=(",", ":"), allow_nan=not nan_as_null)
    try:
        text = dumps(ensure_ascii=False)
        try:
            return text.encode(), JSON
        except UnicodeEncodeError:
            return dumps(ensure_ascii=True).encode(), JSON
    except (TypeError, ValueError, RecursionError):
        raise ResultNotSerializable(
            f"run() returned a value that cannot be sent as JSON ({reason}). "
            "Return lists, dicts, numbers, strings, numpy arrays or pandas objects."
        ) from None


def _has_non_finite(value: object, depth: int = 0) -> bool:
    """Whether a NaN or an infinity is somewhere in `value` (a result orjson wrote with a `null` in it)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth > 256:  # deeper than orjson writes anyway
        return False
    if isinstance(value, dict):
        return any(_has_non_finite(item, depth + 1) for item in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_non_finite(item, depth + 1) for item in value)
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "kind", None) in ("f", "c"):  # numpy (and pandas) floats, without importing numpy here
        try:
            import numpy

            return not bool(numpy.isfinite(value).all())  # type: ignore[call-overload]
        except (ImportError, TypeError):
            return True
    if type(value).__module__.split(".", 1)[0] in ("pandas", "numpy", "torch"):
        try:
            return _has_non_finite(_convert(value), depth + 1)
        except TypeError:
            return False
    return False


def _convert(value: Any) -> Any:
    """Types orjson does not take natively: numpy odd layouts, pandas, sets, tensors (anything with tolist)."""
    module = type(value).__module__.split(".", 1)[0]
    if module == "pandas":
        if type(value).__name__ in ("NAType", "NaTType"):  # missing values, in nullable and datetime columns
            return None
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return value.to_dict(orient="records")
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if hasattr(value, "tolist"):  # numpy (object dtype, non-contiguous), pandas Series/Index, torch, jax
        return value.tolist()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"type {type(value).__module__}.{type(value).__qualname__} is not JSON serializable")


def _reason(exc: orjson.JSONEncodeError) -> str:
    cause = exc.__cause__ or exc.__context__
    return str(cause) if isinstance(cause, TypeError) else str(exc)
