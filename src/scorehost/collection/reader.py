"""Reading collected rows back, for the CLI and the control plane: whole lines in time order, CSV and Parquet.

Files are read while writers append to them: a last line without its newline is a write in progress and is left
out; a line that is not a JSON object with a `time` is skipped and counted.
"""

from __future__ import annotations

import csv
import heapq
import importlib
import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import IO, Any, TextIO

import orjson

from scorehost.collection.layout import PartitionFile, is_collection_name, iter_files
from scorehost.errors import CollectionError

__all__ = ["LineReader", "collections", "iter_lines", "iter_rows", "to_csv", "to_parquet"]

METADATA_COLUMNS = ("time", "collection", "correlationid", "modelversion")
_TYPE_PREFIX = "azureml.inference."

Moment = datetime | float


def _epoch(moment: Moment | None) -> float | None:
    if moment is None or isinstance(moment, int | float):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive times are UTC, as the files are
    return moment.timestamp()


def _row_time(row: Mapping[str, Any]) -> float | None:
    value = row.get("time")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return _epoch(moment)


def collections(directory: Path) -> list[str]:
    """The collections that have a folder under `directory`, sorted."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if is_collection_name(e.name) and e.is_dir(follow_symlinks=False))


class LineReader(Iterator[bytes]):
    """The lines of a tree, each ending in a newline; `skipped` counts unreadable lines, `incomplete` the last
    lines still being written."""

    def __init__(
        self,
        directory: Path,
        collections: Collection[str] | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
    ) -> None:
        self.skipped = 0
        self.incomplete = 0
        self._since = _epoch(since)
        self._until = _epoch(until)
        self._rows = self._merge(Path(directory), collections)

    def __next__(self) -> bytes:
        return next(self._rows)[2]

    def rows(self) -> Iterator[dict[str, Any]]:
        """The same rows, parsed."""
        for _, _, _, row in self._rows:
            yield row

    def _merge(
        self, directory: Path, names: Collection[str] | None
    ) -> Iterator[tuple[float, int, bytes, dict[str, Any]]]:
        since, until = self._since, self._until
        files = [
            found
            for found in iter_files(directory, names)
            if (since is None or found.end > since) and (until is None or found.start < until)
        ]
        files.sort(key=lambda found: (found.start, found.end))
        for _, group in groupby(files, key=lambda found: (found.start, found.end)):
            # One file per writing process: each is in time order (as written), so a merge orders the partition.
            yield from heapq.merge(*(self._file(found, rank) for rank, found in enumerate(group)))

    def _file(self, found: PartitionFile, rank: int) -> Iterator[tuple[float, int, bytes, dict[str, Any]]]:
        since, until = self._since, self._until
        try:
            stream = open(found.path, "rb")  # noqa: SIM115 - closed by the with below, lazily
        except FileNotFoundError:
            return  # pruned between listing and reading
        with stream:
            for line in stream:
                if not line.endswith(b"\n"):
                    self.incomplete += 1
                    break
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    row = None
                moment = _row_time(row) if isinstance(row, dict) else None
                if row is None or moment is None:
                    self.skipped += 1
                    continue
                if (since is None or moment >= since) and (until is None or moment < until):
                    yield moment, rank, line, row


def iter_lines(
    directory: Path,
    *,
    collections: Collection[str] | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> LineReader:
    """Whole lines (bytes, newline included) of the named collections (or all), in time order, with
    `since <= time < until` (datetimes, naive ones UTC, or epoch seconds)."""
    return LineReader(directory, collections, since, until)


def iter_rows(
    directory: Path,
    *,
    collections: Collection[str] | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> Iterator[dict[str, Any]]:
    """`iter_lines`, parsed: one dict per row."""
    return LineReader(directory, collections, since, until).rows()


def _cell(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def _records(row: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One flat record per DataFrame row (or one per collected value), metadata first."""
    kind = row.get("type")
    meta = {
        "time": row.get("time"),
        "collection": kind[len(_TYPE_PREFIX) :] if isinstance(kind, str) and kind.startswith(_TYPE_PREFIX) else kind,
        "correlationid": row.get("correlationid"),
        "modelversion": row.get("modelversion"),
    }
    data = row.get("data")
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        for item in data:
            record = dict(meta)
            for key, value in item.items():
                record[f"data.{key}" if key in meta else str(key)] = _cell(value)
            yield record
    else:
        yield {**meta, "data": None if "data" not in row else orjson.dumps(data).decode()}


def _table(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    records = [record for row in rows for record in _records(row)]
    columns = dict.fromkeys(METADATA_COLUMNS)
    for record in records:
        columns.update(dict.fromkeys(record))
    return list(columns), records


def to_csv(rows: Iterable[Mapping[str, Any]], stream: TextIO) -> int:
    """Write rows as CSV, one line per DataFrame row (its columns beside `time`, `collection`, `correlationid`,
    `modelversion`), else one line with the `data` column as JSON text; returns the lines written.

    The columns are the union over all rows, so the rows are held in memory until the header can be written."""
    columns, records = _table(rows)
    writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return len(records)


def to_parquet(rows: Iterable[Mapping[str, Any]], path_or_stream: str | os.PathLike[str] | IO[bytes]) -> int:
    """Write rows as one Parquet table, laid out as `to_csv` lays them out (`time` a UTC timestamp); needs
    pyarrow. Returns the rows written."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise CollectionError(
            "writing Parquet needs pyarrow: pip install 'scorehost[parquet]' (or export CSV instead)"
        ) from None
    columns, records = _table(rows)
    arrays = []
    for name in columns:
        values = [record.get(name) for record in records]
        if name == "time":
            moments = [_row_time(record) for record in records]
            arrays.append(
                pa.array(
                    [None if m is None else datetime.fromtimestamp(m, UTC) for m in moments],
                    type=pa.timestamp("ms", tz="UTC"),
                )
            )
            continue
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # Mixed kinds in one column (numbers and text, say): written as text, JSON for what is not text.
            arrays.append(
                pa.array([None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values])
            )
    pq.write_table(pa.Table.from_arrays(arrays, names=columns), path_or_stream)
    return len(records)
