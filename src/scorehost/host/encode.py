"""Encode what `run()` returned as a response body: JSON for data, numpy and pandas included."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import orjson

from scorehost.errors import ResultNotSerializable

__all__ = ["JSON", "OCTET_STREAM", "encode_result"]

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def encode_result(value: object) -> tuple[bytes, str]:
    """Return (body, content type). `None` is `{}` and a `str` is a JSON string, as on the reference."""
    if value is None:
        return b"{}", JSON
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), OCTET_STREAM
    try:
        return orjson.dumps(value, default=_convert, option=_OPTIONS), JSON
    except orjson.JSONEncodeError as exc:
        reason = _reason(exc)
    try:  # integers beyond 64 bits, which only the standard library writes
        return json.dumps(value, default=_convert, ensure_ascii=False, separators=(",", ":")).encode(), JSON
    except (TypeError, ValueError, RecursionError):
        raise ResultNotSerializable(
            f"run() returned a value that cannot be sent as JSON ({reason}). "
            "Return lists, dicts, numbers, strings, numpy arrays or pandas objects."
        ) from None


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
