"""Turn one HTTP request into the single input an undecorated `run()` receives, by the rule in force."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson

from scorehost.errors import BodyNotUTF8, InvalidJSON, UnsupportedMediaType
from scorehost.host.run_input import RunInputRule

__all__ = ["ScoreRequest", "build_run_input", "nested_too_deeply", "query_to_json_text", "typed_payload"]

# Werkzeug parses these bodies as forms, so the reference's run() sees "" for them.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond more per request to build
class ScoreRequest:
    """What the host needs from a `/score` request: no transport's objects, only what they carried."""

    method: str
    body: bytes = b""
    query: str = ""
    content_type: str = ""
    # The request's headers as run(request_headers=...) shows them (Title-Case names); read only for scripts that
    # ask, so a transport may hand a lazy view.
    headers: Mapping[str, str] = field(default_factory=dict)
    # The transport's request object for a @rawhttp run() (Werkzeug's, as on the reference), made on demand.
    raw: Callable[[], object] | None = None


def build_run_input(rule: RunInputRule, request: ScoreRequest) -> str:
    """The text `run(data)` receives for this request."""
    if request.method == "GET":
        return _from_query(rule, request.query)
    if rule is RunInputRule.BODY:
        return _raw_body(request)
    if rule is RunInputRule.DATA:
        return _data_value(_decode(request.body), request.body)
    # DATA_IF_ONLY_KEY: the documented {"data": ...} shape gives the value, anything else the raw body.
    # The content type is not trusted here: `curl -d` labels JSON as a form.
    try:
        text = _decode(request.body)
    except BodyNotUTF8:
        return _raw_body(request)  # "" for a binary form upload, as on the reference; else the same 400
    start = text.lstrip()[:1]
    if start == "{":
        parsed, fast = _loads(text, request.body)
        if isinstance(parsed, dict) and len(parsed) == 1 and "data" in parsed:
            return _dumps(parsed["data"], fast)
    return text if start in ("{", "[") else _raw_body(request)


def typed_payload(request: ScoreRequest, parameters: tuple[str, ...]) -> dict[str, object]:
    """The JSON object whose top-level keys feed a typed (`@input_schema`) run(): the body, or the query."""
    if request.method == "GET":
        return query_values(request.query)
    example = ", ".join(f'"{name}": ...' for name in parameters)
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Expects Content-Type to be application/json (got {media_type or 'none'}): run() is decorated with "
            f"@input_schema and reads a JSON object such as {{{example}}}."
        )
    text = _decode(request.body)
    if not text.strip():
        raise InvalidJSON(f"POST body is empty. Expecting a JSON dictionary such as {{{example}}}.")
    try:
        parsed, _ = _loads(text, request.body, strict=True)
    except ValueError as exc:
        raise InvalidJSON(f"POST body could not be decoded as JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidJSON(
            f"POST body should be a JSON dictionary such as {{{example}}}, not a JSON {_json_type(parsed)}."
        )
    return parsed


def _raw_body(request: ScoreRequest) -> str:
    if request.content_type.split(";", 1)[0].strip().lower() in _FORM_TYPES:
        return ""
    return _decode(request.body)


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyNotUTF8(f"Input cannot be decoded as UTF-8: {exc}. Send the body as UTF-8 JSON.") from None


def _data_value(text: str, body: bytes) -> str:
    expected = 'run_input=data expects a JSON object such as {"data": [[1, 2, 3]]}'
    if not text.strip():
        raise InvalidJSON(f"The body is empty; {expected}.")
    try:
        parsed, fast = _loads(text, body, strict=True)
    except ValueError as exc:
        raise InvalidJSON(f"The body is not valid JSON ({exc}); {expected}.") from None
    if not isinstance(parsed, dict):
        raise InvalidJSON(f"The body is a JSON {_json_type(parsed)}, not an object; {expected}.")
    if "data" not in parsed:
        keys = ", ".join(repr(k) for k in list(parsed)[:5]) or "none"
        raise InvalidJSON(f'The body has no "data" key (keys: {keys}); {expected}.')
    return _dumps(parsed["data"], fast)


def _from_query(rule: RunInputRule, query: str) -> str:
    text = query_to_json_text(query)
    if rule is RunInputRule.BODY:
        return text
    parsed = json.loads(text)
    if rule is RunInputRule.DATA and "data" not in parsed:
        raise InvalidJSON('GET /score needs a "data" query parameter under run_input=data, e.g. ?data=[[1,2]].')
    if "data" in parsed and (rule is RunInputRule.DATA or len(parsed) == 1):
        return _dumps(parsed["data"], fast="NaN" not in text and "Infinity" not in text)  # orjson writes them null
    return text


def query_to_json_text(query: str) -> str:
    """The reference's GET input for an undecorated run(): `query_values()` as JSON text."""
    return json.dumps(query_values(query))


def query_values(query: str) -> dict[str, object]:
    """The query string as the reference reads it: each value parsed as JSON when it can be, repeated keys as
    lists, in query order."""
    grouped: dict[str, list[object]] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        try:
            value: object = json.loads(raw)
        except RecursionError:
            raise _too_deep(f"The query parameter {key[:40]!r}") from None
        except ValueError:
            value = raw
        grouped.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


# orjson reads integers beyond 64 bits as floats, losing digits, and refuses NaN and Infinity. The standard
# library reads them exactly, and must then write the value back too: orjson writes NaN as null.
_LONG_NUMBER = b"0" * 19  # an integer beyond 64 bits has at least 19 digits
_DIGITS_TO_ZERO = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))


def _loads(text: str, body: bytes, strict: bool = False) -> tuple[object, bool]:
    """The parsed value, and whether orjson parsed it (rather than the standard library)."""
    if _LONG_NUMBER not in body.translate(_DIGITS_TO_ZERO):  # ~1 µs for a one-row body
        try:
            return orjson.loads(text), True
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text), False
    except RecursionError:
        raise _too_deep("The body") from None
    except ValueError:
        if strict:
            raise
        return None, False


def _dumps(value: object, fast: bool) -> str:
    if fast:
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # nested deeper than orjson writes (it reads deeper than it writes)
            pass
    try:
        return json.dumps(value)
    except RecursionError:
        raise _too_deep('The "data" value') from None


def _too_deep(what: str) -> InvalidJSON:
    """A value nested deeper than Python's parser and writer go (about a thousand levels): the client's input."""
    return InvalidJSON(f"{what} is JSON nested too deeply to read (over about 1000 levels); send flatter data.")


# A JSON string (skipped whole, brackets in it included) or a bracket.
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nested_too_deeply(text: str) -> InvalidJSON | None:
    """The client's error when `text` nests arrays or objects deeper than half the interpreter's recursion limit
    (500 levels by default), which a run() that parses the body itself cannot read: asked only once run() has
    raised RecursionError, so the request path never pays for it."""
    limit = sys.getrecursionlimit() // 2
    depth = 0
    for match in _BRACKETS.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return InvalidJSON(
                    f"The body is JSON nested more than {limit} levels deep, deeper than run() can read (it raised "
                    "RecursionError); send flatter data."
                )
        elif bracket in "]}":
            depth -= 1
    return None


def _json_type(value: object) -> str:
    names = {
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
