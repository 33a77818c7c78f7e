"""Reading collected rows back: time order across files and partitions, filters, torn lines, CSV and Parquet."""

from __future__ import annotations

import glob
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from scorehost.collection import (
    CollectionSettings,
    CollectionWriter,
    ObjectRow,
    PayloadRow,
    collections,
    encode_row,
    iter_lines,
    iter_rows,
    to_csv,
    to_parquet,
)

T = 1714305600.0  # 2024-04-28T12:00:00Z


@pytest.fixture
def settings(tmp_path: Path) -> CollectionSettings:
    return CollectionSettings(directory=tmp_path / "data", model_version="4")


def write(settings: CollectionSettings, relative: str, *items: ObjectRow | PayloadRow, tail: bytes = b"") -> Path:
    path = settings.directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as stream:
        stream.write(b"".join(encode_row(item, settings) for item in items) + tail)
    return path


def obj(i: int, moment: float, collection: str = "model_inputs", data: object = None) -> ObjectRow:
    return ObjectRow(collection, moment, f"r{i}", {"i": i} if data is None else data)


def ids(lines: Any) -> list[str]:
    return [orjson.loads(line)["correlationid"] for line in lines]


def test_rows_come_in_time_order_across_files_and_partitions(settings: CollectionSettings) -> None:
    write(settings, "model_inputs/2024/04/28/12/a-1.jsonl", obj(1, T + 1), obj(3, T + 3), obj(5, T + 5))
    write(settings, "model_inputs/2024/04/28/12/b-2.jsonl", obj(2, T + 2), obj(4, T + 4))
    write(settings, "model_inputs/2024/04/28/13/a-1.jsonl", obj(7, T + 3600))
    write(settings, "model_inputs/2024/04/28/11/a-1.jsonl", obj(0, T - 10))
    write(settings, "request/2024/04/28/12/a-1.jsonl", obj(6, T + 6, "request"))
    lines = list(iter_lines(settings.directory))
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert ids(lines) == ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    assert ids(iter_lines(settings.directory, collections=["request"])) == ["r6"]
    assert collections(settings.directory) == ["model_inputs", "request"]


def test_since_and_until_filter_by_partition_then_by_row(settings: CollectionSettings) -> None:
    write(settings, "model_inputs/2024/04/28/12/a-1.jsonl", *(obj(i, T + i * 600) for i in range(6)))
    write(settings, "model_inputs/2024/04/28/13/a-1.jsonl", obj(6, T + 3600))
    assert ids(iter_lines(settings.directory, since=T + 1200, until=T + 3000)) == ["r2", "r3", "r4"]
    since = datetime(2024, 4, 28, 12, 50)  # naive: UTC
    assert ids(iter_lines(settings.directory, since=since)) == ["r5", "r6"]
    until = datetime(2024, 4, 28, 12, 10, tzinfo=UTC)
    assert ids(iter_lines(settings.directory, until=until)) == ["r0"]


def test_torn_and_foreign_lines_are_skipped_and_counted(settings: CollectionSettings) -> None:
    path = write(settings, "model_inputs/2024/04/28/12/a-1.jsonl", obj(1, T))
    with path.open("ab") as stream:
        stream.write(b"not json\n[1, 2]\n{}\n")
    write(settings, "model_inputs/2024/04/28/12/a-1.jsonl", obj(2, T + 1), tail=b'{"specversion":"1.0","id')
    reader = iter_lines(settings.directory)
    assert ids(reader) == ["r1", "r2"]
    assert (reader.skipped, reader.incomplete) == (3, 1)


def test_an_empty_or_missing_directory_reads_as_nothing(tmp_path: Path) -> None:
    assert list(iter_lines(tmp_path / "absent")) == []
    assert collections(tmp_path / "absent") == []


def export_rows(settings: CollectionSettings) -> list[dict[str, Any]]:
    frame = pd.DataFrame({"a": [1, 2], "time": ["x", "y"]})
    write(
        settings,
        "model_inputs/2024/04/28/12/a-1.jsonl",
        obj(1, T, data=frame),
        obj(2, T + 1, data=[[1, 2], [3, 4]]),
        PayloadRow("request", T + 2, "r3", b"\x00\x01", "image/png", None, "/score", "POST"),
        obj(4, T + 3, data={"nested": {"k": [1]}}),
    )
    return list(iter_rows(settings.directory))


def test_csv_has_a_row_per_record_and_pandas_reads_it(settings: CollectionSettings) -> None:
    stream = io.StringIO()
    assert to_csv(export_rows(settings), stream) == 5
    stream.seek(0)
    table = pd.read_csv(stream, dtype=str, keep_default_na=False)
    assert list(table.columns) == ["time", "collection", "correlationid", "modelversion", "a", "data.time", "data"]
    assert table.to_dict(orient="records") == [
        {**meta(1, "12:00:00.000"), "a": "1", "data.time": "x", "data": ""},
        {**meta(1, "12:00:00.000"), "a": "2", "data.time": "y", "data": ""},
        {**meta(2, "12:00:01.000"), "a": "", "data.time": "", "data": "[[1,2],[3,4]]"},
        {**meta(3, "12:00:02.000", "request"), "a": "", "data.time": "", "data": '"AAE="'},
        {**meta(4, "12:00:03.000"), "a": "", "data.time": "", "data": '{"nested":{"k":[1]}}'},
    ]


def meta(i: int, clock: str, collection: str = "model_inputs") -> dict[str, str]:
    return {"time": f"2024-04-28T{clock}Z", "collection": collection, "correlationid": f"r{i}", "modelversion": "4"}


def test_parquet_has_the_same_layout_with_a_timestamp(settings: CollectionSettings, tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    assert to_parquet(export_rows(settings), path) == 5
    table = pd.read_parquet(path)
    assert list(table.columns) == ["time", "collection", "correlationid", "modelversion", "a", "data.time", "data"]
    assert str(table["time"].dtype) == "datetime64[ms, UTC]"
    assert table["time"].iloc[3] == pd.Timestamp("2024-04-28T12:00:02Z")
    assert table["a"].tolist()[:2] == [1, 2]
    assert table["data"].tolist()[2:] == ["[[1,2],[3,4]]", '"AAE="', '{"nested":{"k":[1]}}']
    stream = io.BytesIO()
    to_parquet(export_rows(settings), stream)
    assert len(pd.read_parquet(io.BytesIO(stream.getvalue()))) == 10  # export_rows wrote its rows again


def test_a_column_of_mixed_kinds_is_written_as_text(tmp_path: Path) -> None:
    rows = [{"time": "2024-04-28T12:00:00.000Z", "type": "azureml.inference.x", "data": [{"v": 1}, {"v": "a"}]}]
    to_parquet(rows, tmp_path / "mixed.parquet")
    assert pd.read_parquet(tmp_path / "mixed.parquet")["v"].tolist() == ["1", "a"]


def test_the_pandas_recipes_of_the_docs_work_on_a_written_tree(settings: CollectionSettings) -> None:
    writer = CollectionWriter(settings)
    for i in range(3):
        writer.offer(obj(i, T + i, data=pd.DataFrame({"pixel0": [i, i], "pixel1": [1, 2]})))
    assert writer.close()
    paths = glob.glob(f"{settings.directory}/model_inputs/**/*.jsonl", recursive=True)
    rows = pd.concat(pd.read_json(path, lines=True, dtype={"specversion": str}) for path in paths)
    assert rows["specversion"].tolist() == ["1.0"] * 3
    inputs = pd.json_normalize(rows.to_dict(orient="records"), record_path="data", meta=["time", "correlationid"])
    assert inputs.columns.tolist() == ["pixel0", "pixel1", "time", "correlationid"]
    assert inputs["correlationid"].tolist() == ["r0", "r0", "r1", "r1", "r2", "r2"]
