"""encode_result: what run() returns, as a response body and its content type."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import uuid

import numpy as np
import pandas as pd
import pytest

from scorehost.errors import ResultNotSerializable
from scorehost.host.encode import JSON, OCTET_STREAM, encode_result


def decoded(value: object) -> object:
    body, content_type = encode_result(value)
    assert content_type == JSON == "application/json"
    return json.loads(body)


# --- plain Python -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"predictions": [0, 1], "scores": [0.25, 0.75]},
        [1, 2.5, "three", None, True, {"nested": [False]}],
        0,
        -3.5,
        True,
        {"text": "café ☃ 日本"},
        [],
        {},
    ],
)
def test_json_values_round_trip(value: object) -> None:
    assert decoded(value) == value


def test_none_is_an_empty_object_as_on_the_reference() -> None:
    assert encode_result(None) == (b"{}", JSON)


def test_str_is_a_json_string() -> None:
    assert encode_result("hello") == (b'"hello"', JSON)


def test_str_holding_json_is_encoded_again_as_on_the_reference() -> None:
    body, _ = encode_result('{"already": "json"}')
    assert json.loads(body) == '{"already": "json"}'


def test_tuple_is_an_array() -> None:
    assert decoded((1, "two", (3,))) == [1, "two", [3]]


def test_non_string_keys_become_strings() -> None:
    assert decoded({1: "a", 2.5: "b", None: "c"}) == {"1": "a", "2.5": "b", "null": "c"}


def test_integers_beyond_64_bits() -> None:
    big = 2**70 + 3
    assert decoded({"id": big, "negative": -big}) == {"id": big, "negative": -big}


def test_sets_are_arrays() -> None:
    assert sorted(decoded({3, 1, 2})) == [1, 2, 3]  # type: ignore[arg-type]
    assert decoded(frozenset({"x"})) == ["x"]


@pytest.mark.parametrize("value", [b"\x00\x01binary", bytearray(b"\xffabc"), memoryview(b"png-bytes")])
def test_bytes_are_sent_as_they_are(value: bytes | bytearray | memoryview) -> None:
    assert encode_result(value) == (bytes(value), OCTET_STREAM)
    assert OCTET_STREAM == "application/octet-stream"


def test_dates_and_times_are_iso_8601() -> None:
    value = {
        "at": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "aware": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 5, 6),
        "time": datetime.time(7, 8, 9),
    }
    assert decoded(value) == {
        "at": "2024-05-06T07:08:09",
        "aware": "2024-05-06T07:08:09+00:00",
        "day": "2024-05-06",
        "time": "07:08:09",
    }


def test_decimal_uuid_and_enum() -> None:
    class Colour(enum.Enum):
        RED = "red"

    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert decoded([decimal.Decimal("1.25"), ident, Colour.RED]) == [1.25, str(ident), "red"]


# --- numpy ----------------------------------------------------------------------------------------------


def test_contiguous_array() -> None:
    assert decoded(np.arange(6).reshape(2, 3)) == [[0, 1, 2], [3, 4, 5]]


def test_non_contiguous_array() -> None:
    array = np.arange(12).reshape(3, 4)[:, ::2].T
    assert not array.flags.c_contiguous
    assert decoded(array) == [[0, 4, 8], [2, 6, 10]]


def test_object_dtype_array() -> None:
    assert decoded(np.array([1, "a", None, 2.5], dtype=object)) == [1, "a", None, 2.5]


def test_float32_array_keeps_float32_values() -> None:
    array = np.array([0.1, 1.5, -2.25], dtype=np.float32)
    result = decoded(array)
    assert result == pytest.approx([0.1, 1.5, -2.25], rel=1e-6)
    assert np.array(result, dtype=np.float32).tolist() == array.tolist()


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (np.int8, [-1, 2]),
        (np.uint64, [0, 2**64 - 1]),
        (np.float16, [0.5, 1.5]),
        (np.bool_, [True, False]),
    ],
)
def test_arrays_of_other_dtypes(dtype: type, values: list[object]) -> None:
    assert decoded(np.array(values, dtype=dtype)) == values


def test_empty_and_zero_dimensional_arrays() -> None:
    assert decoded(np.zeros((0, 3))) == []
    assert decoded(np.array(4.5)) == 4.5


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        (np.float64(1.25), 1.25),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7),
        (np.int32(-3), -3),
        (np.uint8(255), 255),
        (np.bool_(True), True),
    ],
)
def test_numpy_scalars(scalar: object, expected: object) -> None:
    assert decoded(scalar) == expected


def test_numpy_nested_in_dicts_and_lists() -> None:
    value = {
        "probabilities": np.array([[0.25, 0.75]]),
        "label": np.int64(1),
        "batch": [np.float32(0.5), {"deep": np.arange(3)[::2]}],
    }
    assert decoded(value) == {"probabilities": [[0.25, 0.75]], "label": 1, "batch": [0.5, {"deep": [0, 2]}]}


def test_datetime64_array() -> None:
    array = np.array(["2024-01-02T03:04:05"], dtype="datetime64[s]")
    assert decoded(array) == ["2024-01-02T03:04:05"]


# --- pandas ---------------------------------------------------------------------------------------------


def test_dataframe_is_records() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [0.5, 1.5]})
    assert decoded(frame) == [{"a": 1, "b": "x", "c": 0.5}, {"a": 2, "b": "y", "c": 1.5}]


def test_dataframe_with_timestamps_and_missing_values() -> None:
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-01-01", None]), "value": [1.0, np.nan]})
    first, second = decoded(frame)  # type: ignore[misc]
    assert first == {"when": "2024-01-01T00:00:00", "value": 1.0}
    assert second["when"] is None  # NaT: a missing time
    assert math.isnan(second["value"])  # NaN keeps its meaning, as the reference's json sends it


def test_dataframe_with_nullable_dtypes() -> None:
    frame = pd.DataFrame({"count": pd.array([1, None], dtype="Int64"), "ok": pd.array([True, None], dtype="boolean")})
    assert decoded(frame) == [{"count": 1, "ok": True}, {"count": None, "ok": None}]


def test_series_is_its_values() -> None:
    assert decoded(pd.Series([1, 2, 3], index=["a", "b", "c"])) == [1, 2, 3]


def test_pandas_scalars() -> None:
    assert decoded(pd.Timestamp("2024-03-04T05:06:07")) == "2024-03-04T05:06:07"
    assert decoded([pd.NaT, pd.NA]) == [None, None]


def test_pandas_nested_in_a_dict() -> None:
    value = {"frame": pd.DataFrame({"a": [1]}), "series": pd.Series([0.5]), "index": pd.Index([3, 4])}
    assert decoded(value) == {"frame": [{"a": 1}], "series": [0.5], "index": [3, 4]}


# --- what cannot be sent --------------------------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize("value", [Opaque(), {"result": Opaque()}, [1, [Opaque()]]])
def test_unserializable_names_the_type(value: object) -> None:
    with pytest.raises(ResultNotSerializable) as caught:
        encode_result(value)
    error = caught.value
    assert error.status_code == 500
    assert f"type {__name__}.Opaque is not JSON serializable" in error.message
    assert error.message.startswith("run() returned a value that cannot be sent as JSON (")
    assert "Return lists, dicts, numbers, strings, numpy arrays or pandas objects." in error.message


def test_unserializable_dict_key() -> None:
    with pytest.raises(ResultNotSerializable):
        encode_result({(1, 2): "tuple key"})


def test_a_function_is_not_serializable() -> None:
    with pytest.raises(ResultNotSerializable, match=r"builtins\.function"):
        encode_result({"f": lambda: None})


def test_a_lone_surrogate_is_escaped_as_the_reference_escapes_it() -> None:
    # "\ud800" is valid JSON text, which Python reads as is: a script may return what it was sent
    body, content_type = encode_result({"label": "\ud800", "name": "é"})
    assert content_type == "application/json"
    assert body == b'{"label":"\\ud800","name":"\\u00e9"}'
    assert json.loads(body) == {"label": "\ud800", "name": "é"}
