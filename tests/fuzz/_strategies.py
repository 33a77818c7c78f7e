"""Hypothesis strategies for hostile HTTP input: JSON texts no encoder writes, bodies, headers, query strings.

JSON is built as text, not dumped from values, so it can hold what parsers disagree on: NaN and Infinity
literals, numbers past 64 bits or past any float, duplicate keys, lone surrogates in \\u escapes, invalid
escapes, nesting a hundred thousand levels deep (balanced or not), and bytes that are not UTF-8.
"""

from __future__ import annotations

import json
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

__all__ = [
    "CONTENT_TYPES",
    "bodies",
    "deep_request",
    "framing",
    "header_lines",
    "json_texts",
    "query_strings",
    "scoring_requests",
    "typed_payloads",
    "valid_typed_bodies",
]

_LITERALS = [
    "null",
    "true",
    "false",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "1e999",
    "-1e999",
    "1E400",
    "5e-400",
    "-0",
    "0.0e0",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "18446744073709551616",  # 2**64
    "-9223372036854775809",  # one past int64
    "1" * 400,
    "9" * 4400,  # past Python's int-from-text digit limit (4300)
]
_ODD_STRINGS = [
    '"\\ud83d\\ude00"',  # a valid surrogate pair
    '"\\u0000"',
    '"\\uZZZZ"',  # not an escape
    '"\\x41"',
    '"\\',
    '"\t"',  # a raw control character inside a string
    '"\x00"',
    '"\u2028\u2029"',
    '"\ufeff"',
]
# Valid JSON (RFC 8259's grammar allows any \u escape) but not Unicode: what Python reads them as cannot be
# written as UTF-8.
_SURROGATES = [
    '"\\ud800"',  # a lone high surrogate
    '"\\udc00"',  # a lone low surrogate
    '"\\udc00\\ud800"',  # a pair in the wrong order
    '"x\\udfff"',
]
_RAW_SURROGATE = '"\ud800"'  # not JSON-escaped: written as the bytes ED A0 80, which are not UTF-8
_KEYS = ['"data"', '"data"', '"a"', '""', '"Data"', '"data "', '"__proto__"', '"request_headers"']


def _scalars(surrogates: bool) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_LITERALS),
        st.sampled_from(_ODD_STRINGS + (_SURROGATES + [_RAW_SURROGATE] if surrogates else [])),
        st.integers().map(str),
        st.integers(min_value=2**63 - 2, max_value=2**70).map(lambda n: str(n) if n % 2 else str(-n)),
        st.floats().map(json.dumps),  # NaN and the infinities as Python writes them
        st.text(max_size=20).map(lambda text: json.dumps(text, ensure_ascii=False)),
        st.text(max_size=20).map(json.dumps),
    )


scalars = _scalars(surrogates=True)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.one_of(st.sampled_from(_KEYS), st.sampled_from(_SURROGATES), st.text(max_size=8).map(json.dumps))
    members = st.lists(st.tuples(keys, children), max_size=6)
    return st.one_of(
        st.lists(children, max_size=6).map(lambda items: "[" + ",".join(items) + "]"),
        members.map(lambda pairs: "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"),
    )


values = st.recursive(scalars, _containers, max_leaves=25)


@st.composite
def _deep(draw: st.DrawFn) -> str:
    """Nesting past every recursion limit (Python's is about 1000), as arrays, objects or both, closed or not."""
    depth = draw(st.sampled_from([900, 1100, 5000, 100_000]) | st.integers(min_value=1, max_value=3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"data":', "}"), ('[{"a":', "}]")]))
    inner = draw(scalars)
    closed = draw(st.booleans())
    return opener * depth + inner + (closer * depth if closed else "")


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """A JSON-ish text, often `{"data": ...}` as scoring clients send, sometimes not JSON at all."""
    text = draw(st.one_of(values, _deep(), values.map(lambda value: f'{{"data": {value}}}')))
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # a damaged text: a stray prefix, suffix or a cut
        damage = draw(st.sampled_from(["\ufeff", " ", ",", "}", "]", "{", '"', "cut"]))
        text = text[: len(text) // 2] if damage == "cut" else damage + text if damage == "\ufeff" else text + damage
    return text


_PYTHON_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),  # floats: NaN, Infinity too
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
_BAD_UTF8 = [b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A request body: a JSON-ish text as UTF-8 (lone surrogates written as bytes too), sometimes with bytes
    that are not UTF-8 spliced in; JSON as Python writes it (odd values, but it parses); or any bytes at all."""
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return b""
    if kind in (3, 4):  # JSON Python writes: reaches run() and the encoder of what it returns
        value = draw(_PYTHON_JSON)
        return json.dumps({"data": value} if kind == 3 else value, ensure_ascii=draw(st.booleans())).encode()
    body = draw(json_texts()).encode("utf-8", "surrogatepass")
    if kind == 2:
        at = draw(st.integers(min_value=0, max_value=len(body)))
        body = body[:at] + draw(st.sampled_from(_BAD_UTF8)) + body[at:]
    return body


CONTENT_TYPES = [
    None,
    b"application/json",
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/json; charset=latin-1",
    b"APPLICATION/JSON",
    b"application/vnd.api+json",
    b"text/plain",
    b"text/plain; charset=utf-16",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=xyz",
    b"multipart/form-data",
    b"application/octet-stream",
    b"",
    b"json",
    b"application/json;;;=",
    b"*/*",
]

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", min_size=1)
_FIELD_VALUE = st.binary(max_size=60).map(  # visible ASCII, tabs and obs-text (bytes past 0x7f): what HTTP allows
    lambda raw: bytes(byte for byte in raw if byte == 9 or 0x20 <= byte != 0x7F).strip()
)
_NAMED_VALUES = {
    b"x-ms-request-id": [b"r", b"r" * 100, b"r" * 101, b"\xff\xfe"],
    b"x-request-id": [b"r" * 101, b"", b"\xc3\x28"],
    b"x-ms-client-request-id": [b"c" * 101, b"c"],
    b"traceid": [b"t", b"\xff"],
    b"traceparent": [b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b"garbage", b"00-" + b"0" * 200],
    b"origin": [b"http://example.com", b"null", b"\xff"],
    b"accept": [b"*/*", b"application/json", b"text/html"],
    b"accept-encoding": [b"gzip", b"br, zstd", b"\xff"],
    b"expect": [b"100-continue", b"200-ok"],
    b"azureml-model-deployment": [b"blue", b"nope", b"\xff", b""],
}


@st.composite
def header_lines(draw: st.DrawFn, max_size: int = 4) -> list[tuple[bytes, bytes]]:
    """Extra request headers: known names with odd values, and random names with random values."""
    known = st.sampled_from(sorted(_NAMED_VALUES)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(_NAMED_VALUES[name]))
    )
    random = st.tuples(_TOKEN.map(str.encode), _FIELD_VALUE)
    return draw(st.lists(known | random, max_size=max_size))


@st.composite
def framing(draw: st.DrawFn, body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """How the body is framed: its Content-Length right, short, long, absent, doubled or bogus, or chunked
    (well or badly). Returns the framing headers and the bytes that follow the head."""
    mode = draw(
        st.sampled_from(
            ["exact", "exact", "exact", "exact", "short", "long", "absent", "double", "bogus", "chunked", "bad-chunk"]
        )
    )
    size = len(body)
    if mode == "exact":
        return [(b"Content-Length", str(size).encode())], body
    if mode == "short":
        return [(b"Content-Length", str(max(0, size - draw(st.integers(1, 8)))).encode())], body
    if mode == "long":
        return [(b"Content-Length", str(size + draw(st.integers(1, 8))).encode())], body
    if mode == "absent":
        return [], body
    if mode == "double":
        return [(b"Content-Length", str(size).encode()), (b"Content-Length", str(size + 1).encode())], body
    if mode == "bogus":
        bogus = draw(st.sampled_from([b"-1", b"abc", b"1e3", b" 5", b"0x10", b"99999999999999999"]))
        return [(b"Content-Length", bogus)], body
    chunk = b"%x\r\n%s\r\n" % (size, body) if body else b""
    if mode == "chunked":
        return [(b"Transfer-Encoding", b"chunked")], chunk + b"0\r\n\r\n"
    damaged = draw(st.sampled_from([b"zz\r\n", b"%x\r\n" % (size + 5), b"", b"0\r\n", b"-1\r\n"]))
    return [(b"Transfer-Encoding", draw(st.sampled_from([b"chunked", b"chunked, gzip", b"gzip"])))], chunk + damaged


@st.composite
def scoring_requests(draw: st.DrawFn, path: bytes = b"/score") -> bytes:
    """The wire bytes of one fuzzed POST: a body, a content type, framing and extra headers."""
    body = draw(bodies())
    headers = [(b"Host", b"127.0.0.1"), (b"Connection", b"close")]
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    headers += draw(header_lines())
    framed, rest = draw(framing(body))
    target = path + (b"?echo=1" if draw(st.integers(0, 4)) == 0 else b"")
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers + framed)
    return b"POST " + target + b" HTTP/1.1\r\n" + head + b"\r\n" + rest


def deep_request(method: str, levels: int) -> bytes:
    """Issue 16.9's request: `{"data": [[[[...` nested `levels` deep, as a JSON body or (GET) a query string."""
    nested = "[" * levels + "]" * levels
    head = [(b"Host", b"127.0.0.1"), (b"Connection", b"close")]
    if method == "GET":
        return b"GET /score?data=" + nested.encode() + b" HTTP/1.1\r\n" + _head(head) + b"\r\n"
    body = f'{{"data": {nested}}}'.encode()
    head += [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode())]
    return b"POST /score HTTP/1.1\r\n" + _head(head) + b"\r\n" + body


def _head(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


_QUERY_PIECES = [
    b"data",
    b"data=",
    b"=",
    b"&",
    b"&&",
    b";",
    b"+",
    b"%",
    b"%G1",
    b"%zz",
    b"%00",
    b"%ED%A0%80",  # a surrogate, percent-encoded
    b"%FF",
    b"%C3%28",
    b"echo=1",
    b"version=3",
    b"\xff",  # raw, not percent-encoded
]


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    """A query string: `data=` with a JSON-ish text (percent-encoded or raw), repeated keys, broken escapes."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.integers(min_value=0, max_value=3))
        if kind == 0:
            parts.append(draw(st.sampled_from(_QUERY_PIECES)))
            continue
        key = draw(st.sampled_from([b"data", b"data", b"x", b"", b"Data", b"data[]"]))
        text = draw(json_texts()).encode("utf-8", "surrogatepass")[:6000]
        encoded = text if kind == 1 else quote_from_bytes(text, safe=b"[]{},:").encode()
        # kept within reach of the request-line limits (4094 bytes is gunicorn's, and the server's)
        cut = draw(st.sampled_from([400, 1500, 3000, 4000, 8000]))
        parts.append(key + b"=" + bytes(byte for byte in encoded[:cut] if byte > 0x20 and byte not in b"#"))
    return b"&".join(parts)


_ROWS = st.lists(
    st.tuples(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)), min_size=1, max_size=8
)


@st.composite
def valid_typed_bodies(draw: st.DrawFn) -> tuple[bytes, int]:
    """A body `typed_echo.py` accepts (rows of two numbers, options and a frame of its shapes), with its rows."""
    rows = draw(_ROWS)
    body: dict[str, object] = {"data": [[x, y] for x, y in rows]}
    if draw(st.booleans()):
        body["options"] = {
            "scale": draw(st.floats(allow_nan=False, allow_infinity=False)),
            "label": draw(st.text(max_size=10)),
            "tags": draw(st.lists(st.text(max_size=5), max_size=3)),
        }
    if draw(st.booleans()):
        body["frame"] = draw(
            st.lists(st.fixed_dictionaries({"age": st.integers(0, 130), "city": st.text(max_size=8)}), max_size=3)
        )
    return json.dumps(body).encode(), len(rows)


@st.composite
def typed_payloads(draw: st.DrawFn, surrogates: bool) -> dict[str, str]:
    """`typed_echo.py`'s parameters in the shapes it accepts, holding hostile scalars (odd numbers and strings,
    lone surrogates when asked): the JSON text of each parameter, by name."""
    scalar = _scalars(surrogates)
    number = st.one_of(st.sampled_from(_LITERALS), st.floats().map(json.dumps), st.integers().map(str))
    row = st.tuples(number, number).map(lambda pair: f"[{pair[0]},{pair[1]}]")
    payload = {"data": "[" + ",".join(draw(st.lists(row, min_size=1, max_size=4))) + "]"}
    keys = st.sampled_from(['"scale"', '"label"', '"tags"']) | st.text(max_size=5).map(json.dumps)
    if surrogates:
        keys |= st.sampled_from(_SURROGATES)
    member = scalar | st.lists(scalar, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    if draw(st.booleans()):
        pairs = draw(st.lists(st.tuples(keys, member), max_size=4))
        payload["options"] = "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"
    if draw(st.booleans()):
        rows = draw(st.lists(st.tuples(scalar, scalar), max_size=3))
        payload["frame"] = "[" + ",".join(f'{{"age":{age},"city":{city}}}' for age, city in rows) + "]"
    return payload
