"""encode_row: Azure ML's row format for collected objects and request/response payloads."""

from __future__ import annotations

import base64
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from scorehost import __version__
from scorehost.collection import CollectionSettings, ObjectRow, PayloadRow, encode_row
from scorehost.errors import CollectionError

T = 1669884690.1234  # 2022-12-01T08:51:30.123Z


@pytest.fixture
def settings(tmp_path: Path) -> CollectionSettings:
    return CollectionSettings(
        directory=tmp_path,
        source="/endpoints/e/deployments/blue",
        model_version="2",
        capture_headers=("X-Trace", "Authorization"),
        max_payload_bytes=64,
    )


def encode(item: ObjectRow | PayloadRow, settings: CollectionSettings) -> dict[str, Any]:
    line = encode_row(item, settings)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    row = orjson.loads(line)
    assert isinstance(row, dict)
    return row


def collected(obj: object, settings: CollectionSettings) -> dict[str, Any]:
    return encode(ObjectRow("model_inputs", T, "req-1", obj), settings)


def test_a_dataframe_row_has_every_azure_field(settings: CollectionSettings) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [0.1, float("nan")]})
    row = collected(frame, settings)
    assert row["data"] == [{"a": 1, "b": "x", "c": 0.1}, {"a": 2, "b": None, "c": None}]
    assert row["data"] == orjson.loads(orjson.dumps(frame.to_dict(orient="records")).replace(b"NaN", b"null"))
    assert uuid.UUID(row.pop("id")).version == 4
    data = orjson.dumps(row.pop("data"))
    assert row == {
        "specversion": "1.0",
        "source": "/endpoints/e/deployments/blue",
        "type": "azureml.inference.model_inputs",
        "datacontenttype": "application/json",
        "time": "2022-12-01T08:51:30.123Z",
        "correlationid": "req-1",
        "xrequestid": "req-1",
        "modelversion": "2",
        "collectdatatype": "pandas.core.frame.DataFrame",
        "agent": f"scorehost/{__version__}",
        "contentrange": f"bytes 0-{len(data) - 1}/{len(data)}",
    }


def test_dataframe_timestamps_are_iso_text(settings: CollectionSettings) -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-05-01 13:00:00"])})
    assert collected(frame, settings)["data"] == [{"t": "2024-05-01T13:00:00.000"}]


def test_series_numpy_and_plain_values(settings: CollectionSettings) -> None:
    series = collected(pd.Series([1.5, 2.5]), settings)
    assert (series["data"], series["collectdatatype"]) == ([1.5, 2.5], "pandas.core.series.Series")
    array = collected(np.arange(6).reshape(2, 3), settings)
    assert (array["data"], array["collectdatatype"]) == ([[0, 1, 2], [3, 4, 5]], "numpy.ndarray")
    strided = collected(np.arange(6).reshape(2, 3)[:, ::2], settings)
    assert strided["data"] == [[0, 2], [3, 5]]
    scalar = collected(np.float32(1.5), settings)
    assert (scalar["data"], scalar["collectdatatype"]) == (1.5, "numpy.float32")
    nested = collected({"x": np.array([1, 2]), 3: {"when": pd.Timestamp("2024-01-01")}, "d": Decimal("1.5")}, settings)
    assert nested["data"] == {"x": [1, 2], "3": {"when": "2024-01-01T00:00:00"}, "d": "1.5"}
    assert nested["collectdatatype"] == "python.dict"
    text = collected("hello", settings)
    assert (text["data"], text["collectdatatype"]) == ("hello", "python.str")
    assert collected([1, "a", None], settings)["data"] == [1, "a", None]


def test_bytes_are_base64(settings: CollectionSettings) -> None:
    row = collected(b"\x00\xffraw", settings)
    assert row["dataencoding"] == "base64"
    assert row["datacontenttype"] == "application/octet-stream"
    assert base64.b64decode(row["data"]) == b"\x00\xffraw"
    assert row["collectdatatype"] == "python.bytes"


def test_anything_else_is_its_text_and_names_its_type(settings: CollectionSettings) -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    row = collected(Thing(), settings)
    assert row["data"] == "a thing"
    assert row["collectdatatype"].endswith("Thing")


def test_an_object_that_cannot_be_encoded_raises_collection_error(settings: CollectionSettings) -> None:
    with pytest.raises(CollectionError, match="cannot encode a python.dict for collection 'model_inputs'"):
        collected({"n": 2**70}, settings)
    with pytest.raises(CollectionError, match="cannot encode a pandas.core.frame.DataFrame"):
        collected(pd.DataFrame([[1, 2]], columns=["a", "a"]), settings)
    with pytest.raises(CollectionError, match="becomes a folder name"):
        encode(ObjectRow("../escape", T, "r", 1), settings)


def test_an_object_past_four_times_the_payload_limit_is_written_without_its_data(
    settings: CollectionSettings,
) -> None:
    row = collected(list(range(200)), settings)  # 691 bytes of JSON, the cap is 4 x 64
    assert "data" not in row
    assert row["truncated"] is True
    assert row["contentrange"] == "bytes */691"
    assert collected(list(range(10)), settings).get("truncated") is None


def payload(body: bytes, content_type: str | None = "application/json", **kw: Any) -> PayloadRow:
    return PayloadRow("request", T, "req-1", body, content_type, kw.pop("headers", None), "/score", "POST", **kw)


def test_a_json_body_is_embedded_byte_for_byte(settings: CollectionSettings) -> None:
    body = b'{"data": [[1.10, 2e3]], "z": "\\u00e9"}'
    line = encode_row(payload(body), settings)
    assert b'"data":' + body + b"," in line  # no re-encoding: 1.10 and 2e3 stay as sent
    row = orjson.loads(line)
    assert row["path"] == "/score"
    assert row["method"] == "POST"
    assert row["datacontenttype"] == "application/json"
    assert row["contentrange"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    assert "dataencoding" not in row
    assert "collectdatatype" not in row


def test_a_pretty_printed_body_stays_on_one_line(settings: CollectionSettings) -> None:
    body = b'{\r\n  "data": [1, 2],\n  "s": "a\\nb"\n}\n'
    row = encode(payload(body), settings)
    assert row["data"] == {"data": [1, 2], "s": "a\nb"}
    assert row["contentrange"] == f"bytes 0-{len(body) - 1}/{len(body)}"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"a,b\n1,2\n", "text/csv"), (b'{"broken": ', "application/json")],
)
def test_a_body_that_is_not_json_is_base64(settings: CollectionSettings, body: bytes, content_type: str) -> None:
    row = encode(payload(body, content_type), settings)
    assert row["dataencoding"] == "base64"
    assert base64.b64decode(row["data"]) == body
    assert row["datacontenttype"] == content_type
    assert "truncated" not in row


def test_a_json_body_sent_as_text_is_still_json(settings: CollectionSettings) -> None:
    row = encode(payload(b"[1, 2]", None), settings)  # the content type is a hint only
    assert row["data"] == [1, 2]
    assert row["datacontenttype"] == "application/octet-stream"


def test_a_body_past_the_limit_is_truncated_and_marked(settings: CollectionSettings) -> None:
    body = b'{"data": "' + b"x" * 100 + b'"}'
    row = encode(payload(body), settings)
    assert row["truncated"] is True
    assert row["dataencoding"] == "base64"
    assert base64.b64decode(row["data"]) == body[:64]
    assert row["contentrange"] == f"bytes 0-63/{len(body)}"


def test_a_body_cut_short_by_its_sender_keeps_its_full_size(settings: CollectionSettings) -> None:
    row = encode(payload(b"x" * 64, size=1000), settings)
    assert row["contentrange"] == "bytes 0-63/1000"
    assert row["truncated"] is True


def test_an_empty_body(settings: CollectionSettings) -> None:
    row = encode(payload(b"", None), settings)
    assert (row["data"], row["contentrange"]) == ("", "bytes */0")


def test_secret_headers_are_never_written_even_when_asked_and_handed_over(settings: CollectionSettings) -> None:
    headers = {"Authorization": "Bearer s3cr3t", "X-Trace": "abc", "Cookie": "id=1", "X-Other": "o"}
    line = encode_row(payload(b"{}", headers=headers), settings)
    assert orjson.loads(line)["headers"] == {"x-trace": "abc"}
    assert b"s3cr3t" not in line
    assert b"id=1" not in line
    assert "headers" not in encode(payload(b"{}", headers={"X-Other": "o"}), settings)


def test_time_is_iso_utc_with_milliseconds(settings: CollectionSettings) -> None:
    assert re.fullmatch(r"1970-01-01T00:00:00\.999Z", collected_at(0.9999, settings))
    assert collected_at(1e9, settings) == "2001-09-09T01:46:40.000Z"


def collected_at(moment: float, settings: CollectionSettings) -> str:
    time: str = encode(ObjectRow("model_inputs", moment, "r", 1), settings)["time"]
    return time


def test_pandas_reads_the_rows_back(settings: CollectionSettings, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = tmp_path / "rows.jsonl"
    path.write_bytes(encode_row(ObjectRow("model_inputs", T, "r", frame), settings) * 2)
    rows = pd.read_json(path, lines=True)
    assert list(rows["correlationid"]) == ["r", "r"]
    records = pd.json_normalize(rows["data"].explode().tolist())
    assert records.to_dict(orient="records") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}] * 2
