"""Self-hosted data collection, the I/O side: what Azure ML's model data collector writes, written to local files.

```
settings.py   CollectionSettings: what to collect, where, how long to keep it; secret headers refused
rows.py       ObjectRow / PayloadRow (built on the request path) -> one JSON line (on the writer thread)
layout.py     <directory>/<collection>/<yyyy>/<MM>/<dd>/<HH>[/<mm>]/<host>-<pid>.jsonl
writer.py     CollectionWriter: offer() never blocks; a daemon thread encodes, appends, fsyncs and prunes
files.py      AppendFiles: the open files, appended to whole rows at a time, cut back when a write fails
retention.py  prune(): partitions past max_age_seconds, then the oldest files past max_bytes
reader.py     iter_lines() in time order, to_csv(), to_parquet()
session.py    the collection a serving process writes to, and the request being collected (the server's side)
```
"""

from __future__ import annotations

from scorehost.collection.layout import ROLLING_RATES, is_collection_name
from scorehost.collection.reader import LineReader, collections, iter_lines, iter_rows, to_csv, to_parquet
from scorehost.collection.retention import PruneReport, prune
from scorehost.collection.rows import ObjectRow, PayloadRow, Row, encode_row
from scorehost.collection.settings import CollectionRule, CollectionSettings, is_secret_header
from scorehost.collection.writer import (
    CLOSED,
    DISK_FULL,
    ENCODE_ERROR,
    QUEUE_FULL,
    WRITE_ERROR,
    CollectionWriter,
    WriterStats,
)

__all__ = [
    "CLOSED",
    "DISK_FULL",
    "ENCODE_ERROR",
    "QUEUE_FULL",
    "ROLLING_RATES",
    "WRITE_ERROR",
    "CollectionRule",
    "CollectionSettings",
    "CollectionWriter",
    "LineReader",
    "ObjectRow",
    "PayloadRow",
    "PruneReport",
    "Row",
    "WriterStats",
    "collections",
    "encode_row",
    "is_collection_name",
    "is_secret_header",
    "iter_lines",
    "iter_rows",
    "prune",
    "to_csv",
    "to_parquet",
]
