"""What the request path hands over (`ObjectRow`, `PayloadRow`: plain tuples, nothing serialized) and how the writer
thread turns each into one line of Azure ML's format (`encode_row`).

pandas and numpy are never imported here: an object can only be a DataFrame if pandas is loaded already, so
`sys.modules` says which checks can apply.
"""

from __future__ import annotations

import base64
import math
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from scorehost import __version__
from scorehost.collection.layout import is_collection_name
from scorehost.collection.settings import CollectionSettings
from scorehost.errors import CollectionError
from scorehost.telemetry.request_ids import new_request_id

__all__ = [
    "AGENT",
    "EncodedRow",
    "ObjectRow",
    "PayloadRow",
    "Row",
    "encode_row",
    "iso_time",
    "row_second",
    "type_name",
]

AGENT = f"scorehost/{__version__}"
# A collected object whose JSON is larger than this many times max_payload_bytes is written without its data.
OBJECT_CAP_FACTOR = 4
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_PANDAS_HOMES = {"DataFrame": "pandas.core.frame", "Series": "pandas.core.series"}


class ObjectRow(NamedTuple):
    """An object a script collected (`Collector(name).collect(obj)`); `time` is epoch seconds."""

    collection: str
    time: float
    correlation_id: str
    obj: object


class PayloadRow(NamedTuple):
    """A request or response body, as it went over the wire; `headers` are filtered again when encoded.

    `size` is the body's full length when `body` holds only its first bytes (-1: `body` is whole)."""

    collection: str
    time: float
    correlation_id: str
    body: bytes
    content_type: str | None
    headers: Mapping[str, str] | None
    path: str
    method: str
    size: int = -1
    status: int = 0  # a response's status code (0: a request)


class EncodedRow(NamedTuple):
    """A row already made into its line (by `encode_row`, on the thread that collected it)."""

    collection: str
    time: float
    line: bytes


Row = ObjectRow | PayloadRow | EncodedRow


def row_second(epoch: float) -> int:
    """The whole UTC second a row's time falls in; its partition and its `time` field both use it."""
    return math.floor(epoch * 1000) // 1000


def iso_time(epoch: float) -> str:
    """`2022-12-01T08:51:30.123Z`: ISO 8601, UTC, milliseconds, as Azure writes it."""
    global _last_second, _last_prefix
    seconds, millis = divmod(math.floor(epoch * 1000), 1000)
    if seconds != _last_second:  # rows come in bursts within one second: format it once
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = seconds
    return f"{_last_prefix}.{millis:03d}Z"


_last_second, _last_prefix = 0, "1970-01-01T00:00:00"


def _time_json(epoch: float) -> bytes:
    """`iso_time` as the bytes of a line; the rows of one request share their time, so the last is kept."""
    global _last_epoch, _last_time
    if epoch != _last_epoch:
        _last_time, _last_epoch = iso_time(epoch).encode(), epoch
    return _last_time


_last_epoch, _last_time = -1.0, b""


def type_name(value: object) -> str:
    """The `collectdatatype` Azure writes: `pandas.core.frame.DataFrame`, `numpy.ndarray`, `python.dict`."""
    kind = type(value)
    module = kind.__module__
    if module == "builtins":
        return f"python.{kind.__qualname__}"
    if module == "pandas" and kind.__qualname__ in _PANDAS_HOMES:
        module = _PANDAS_HOMES[kind.__qualname__]  # pandas 3 says "pandas"; Azure's readers expect the full path
    return f"{module}.{kind.__qualname__}"


def _default(value: Any) -> Any:
    # orjson calls this for what it cannot write itself, inside a collected dict or list.
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(value, pandas.DataFrame):
            return value.to_dict(orient="records")
        if isinstance(value, pandas.Series | pandas.Index):
            return value.tolist()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset):
        return list(value)
    for method in ("isoformat", "tolist"):  # pandas Timestamps; numpy arrays orjson refuses (strided, complex)
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    return str(value)


def _object_data(obj: object) -> tuple[bytes, bool]:
    """The JSON of a collected object, and whether it is base64 text of bytes."""
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(obj, pandas.DataFrame):
            # pandas writes the records itself: no round trip through Python objects (15 digits: its maximum).
            text = obj.to_json(orient="records", date_format="iso", double_precision=15, default_handler=str)
            return text.encode(), False
        if isinstance(obj, pandas.Series):
            text = obj.to_json(orient="values", date_format="iso", double_precision=15, default_handler=str)
            return text.encode(), False
    if isinstance(obj, bytes | bytearray | memoryview):
        return orjson.dumps(base64.b64encode(obj).decode("ascii")), True
    numpy = sys.modules.get("numpy")
    if isinstance(obj, dict | list | tuple | str | int | float | None) or (
        numpy is not None and isinstance(obj, numpy.ndarray | numpy.generic)
    ):
        return orjson.dumps(obj, default=_default, option=_OPTIONS), False
    return orjson.dumps(str(obj)), False


def _json_body(body: bytes) -> bytes | None:
    """The body itself when it is JSON (one line: a pretty-printed body loses its line breaks), else None."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    # In valid JSON a line break can only be whitespace between tokens (strings escape theirs): drop them.
    return body.translate(None, b"\r\n") if b"\n" in body or b"\r" in body else body


def encode_row(item: Row, settings: CollectionSettings) -> bytes:
    """One JSON line (ending in a newline) for a queued row; raises `CollectionError` when it cannot be encoded.

    Written for speed (every request of a collecting deployment makes up to four rows, all encoded in the
    worker's own process): the line is joined from parts, what never changes for a collection made once, the
    data embedded as the JSON it already is; only text that may need escaping goes through orjson."""
    if type(item) is EncodedRow:
        return item.line
    template = _TEMPLATES.get((id(settings), item.collection))
    if template is None:
        template = _template(settings, item.collection)
    try:
        if type(item) is PayloadRow:
            return _payload_line(item, settings, template)
        assert isinstance(item, ObjectRow)
        return _object_line(item, settings, template)
    except orjson.JSONEncodeError as exc:  # a lone surrogate in an id or header, say
        raise CollectionError(f"cannot encode a row of collection {item.collection!r}: {exc}") from exc


class _Template(NamedTuple):
    """The constant parts of a collection's rows; `settings` is held so that its id is not reused."""

    source_and_type: bytes  # ,"source":...,"type":...,"datacontenttype":
    versions: bytes  # ,"modelversion":...[,"deploymentversion":...]
    agent: bytes  # ,"agent":...,"contentrange":"
    settings: CollectionSettings


_TEMPLATES: dict[tuple[int, str], _Template] = {}
_JSON_TEXTS: dict[str, bytes] = {}  # content types, paths and methods, which repeat: escaped once each


def _template(settings: CollectionSettings, collection: str) -> _Template:
    if not is_collection_name(collection):
        raise CollectionError(
            f"collection name {collection!r} cannot be used: it becomes a folder name, so use letters, "
            "digits, '_', '.' and '-'"
        )
    dumps = orjson.dumps
    versions = b',"modelversion":' + dumps(settings.model_version)
    if settings.deployment_version:
        versions += b',"deploymentversion":' + dumps(settings.deployment_version)
    template = _Template(
        b'","source":' + dumps(settings.source) + b',"type":' + dumps(f"azureml.inference.{collection}")
        + b',"datacontenttype":',
        versions,
        b',"agent":' + dumps(AGENT) + b',"contentrange":"',
        settings,
    )  # fmt: skip
    if len(_TEMPLATES) > 1024:  # settings come and go in tests; a process keeps one
        _TEMPLATES.clear()
    _TEMPLATES[(id(settings), collection)] = template
    return template


def _json_text(text: str) -> bytes:
    found = _JSON_TEXTS.get(text)
    if found is None:
        found = orjson.dumps(text)
        if len(_JSON_TEXTS) < 1024 and len(text) < 256:
            _JSON_TEXTS[text] = found
    return found


def _payload_line(item: PayloadRow, settings: CollectionSettings, template: _Template) -> bytes:
    body = item.body if type(item.body) is bytes else bytes(item.body)
    total = item.size if item.size >= 0 else len(body)
    limit = settings.max_payload_bytes
    data = _json_body(body) if len(body) == total and total <= limit else None
    shown = total
    encoding = b""
    if data is None:  # not JSON, or cut short (the first max_payload_bytes bytes stay, as base64)
        body = body[:limit]
        shown = len(body)
        data = b'"' + base64.b64encode(body) + b'"'
        encoding = b',"dataencoding":"base64"'
    parts = [
        b'{"specversion":"1.0","id":"',
        new_request_id().encode(),
        template.source_and_type,
        _json_text(item.content_type or "application/octet-stream"),
        b',"time":"',
        _time_json(item.time),
        b'","data":',
        data,
        encoding,
        b',"path":',
        _json_text(item.path),
        b',"method":',
        _json_text(item.method),
    ]
    if item.status:
        parts.append(b',"status":%d' % item.status)
    if item.headers:
        allowed = settings.capture_header_names()
        headers = {name.lower(): value for name, value in item.headers.items() if name.lower() in allowed}
        if headers:
            parts += (b',"headers":', orjson.dumps(headers))
    correlation = orjson.dumps(item.correlation_id)
    parts += (b',"correlationid":', correlation, b',"xrequestid":', correlation, template.versions, template.agent)
    parts.append(b"bytes 0-%d/%d" % (shown - 1, total) if shown else b"bytes */%d" % total)
    parts.append(b'","truncated":true}\n' if shown < total else b'"}\n')
    return b"".join(parts)


def _object_line(item: ObjectRow, settings: CollectionSettings, template: _Template) -> bytes:
    try:
        data, encoded = _object_data(item.obj)
    except Exception as exc:  # whatever the object's own methods raise
        raise CollectionError(
            f"cannot encode a {type_name(item.obj)} for collection {item.collection!r}: {exc}"
        ) from exc
    total = len(data)
    truncated = total > OBJECT_CAP_FACTOR * settings.max_payload_bytes
    correlation = orjson.dumps(item.correlation_id)
    parts = [
        b'{"specversion":"1.0","id":"',
        new_request_id().encode(),
        template.source_and_type,
        b'"application/octet-stream"' if encoded else b'"application/json"',
        b',"time":"',
        _time_json(item.time),
        b'"',
    ]
    if not truncated:
        parts += (b',"data":', data)
    if encoded:
        parts.append(b',"dataencoding":"base64"')
    parts += (b',"correlationid":', correlation, b',"xrequestid":', correlation, template.versions)
    parts += (b',"collectdatatype":', orjson.dumps(type_name(item.obj)), template.agent)
    if truncated:
        parts.append(b'bytes */%d","truncated":true}\n' % total)
    else:
        parts.append(b'bytes 0-%d/%d"}\n' % (total - 1, total))
    return b"".join(parts)
