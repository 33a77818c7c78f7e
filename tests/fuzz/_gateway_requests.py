"""Hypothesis strategies for raw requests to a gateway: request lines good and bad, keys right and wrong."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

from fuzz._strategies import bodies, framing, header_lines, query_strings

__all__ = ["gateway_requests"]

_METHODS = ["GET", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
_BAD_METHODS = ["get", "P0ST", "", "GET GET", "\x00", "A" * 300, "BREW", "CONNECT"]
_BAD_VERSIONS = [b"HTTP/2.0", b"HTTP/1.x", b"", b"HTTP/9.9", b"http/1.1", b"HTTP/1.1 x", b"HTTP/1.10"]
_BAD_LINES = [b"NoColonHere", b" folded: continuation", b"\tx: y", b"X: \x00", b":", b"a b: c", b"X: " + b"v" * 20000]
# Each request is well-formed but for at most one part: a request broken everywhere only ever meets the parser.
_BREAKS = ["none"] * 6 + ["method", "target", "version", "line-end", "header-line", "framing"]


@st.composite
def gateway_requests(draw: st.DrawFn, endpoint: str, keys: list[str]) -> bytes:
    """Raw bytes of one request to a gateway: to `endpoint` and elsewhere, with right and wrong keys, odd headers
    and any body; at most one part of it (request line, a header line, the framing) broken."""
    broken = draw(st.sampled_from(_BREAKS))
    base = f"/endpoints/{endpoint}".encode()
    good_targets = [base + b"/score"] * 4 + [
        base + b"/score?x=1",
        base + b"/swagger.json",
        base + b"/docs",
        base + b"/",
        base,
        base + b"//score",
        base + b"/../score",
        base + b"/%2e%2e/score",
        b"/endpoints/",
        b"/endpoints/nope/score",
        b"/endpoints/" + b"x" * 300 + b"/score",
        b"/",
        b"/metrics",
        b"/" + b"a" * 10000,
    ]
    targets = st.sampled_from(good_targets) | query_strings().map(
        lambda query: base + b"/score?" + quote_from_bytes(query, safe=b"=&%").encode()
    )
    if broken == "target":
        targets = st.sampled_from([b"*", b"", b"http://127.0.0.1" + base + b"/score", base + b"/score#x", base + b" x"])
        targets |= query_strings().map(lambda query: base + b"/score?" + query)  # raw bytes, unescaped
    target = draw(targets)
    method = draw(st.sampled_from(_BAD_METHODS if broken == "method" else _METHODS))
    version = draw(st.sampled_from(_BAD_VERSIONS if broken == "version" else [b"HTTP/1.1"] * 5 + [b"HTTP/1.0"]))
    line_end = b"\n" if broken == "line-end" else b"\r\n"
    head = method.encode("latin-1") + b" " + target + b" " + version + line_end
    headers = [(b"Host", b"127.0.0.1")] if draw(st.integers(0, 9)) else []
    if draw(st.integers(0, 9)):
        headers.append((b"Connection", b"close"))
    key = draw(
        st.sampled_from(
            [f"Bearer {keys[0]}".encode()] * 6
            + [f"Bearer {keys[-1]}".encode(), f"bearer {keys[0]}".encode(), f"Bearer  {keys[0]}".encode()]
            + [b"Bearer wrong", b"Bearer", b"Basic eDp5", b"", b"Bearer " + b"k" * 9000, None]
        )
    )
    if key is not None:
        headers.append((b"Authorization", key))
    headers += draw(header_lines())
    body = draw(bodies())
    if broken == "framing":
        framed, rest = draw(framing(body))
    elif method in ("GET", "OPTIONS", "DELETE") and draw(st.booleans()):
        framed, rest = [], b""  # bodiless, as usual
    else:
        framed, rest = draw(st.sampled_from([True, True, True, False]).flatmap(lambda exact: _framed_well(body, exact)))
    lines = [name + b": " + value for name, value in headers + framed]
    if broken == "header-line":
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(_BAD_LINES)))
    return head + b"".join(line + line_end for line in lines) + line_end + rest


def _framed_well(body: bytes, exact: bool) -> st.SearchStrategy[tuple[list[tuple[bytes, bytes]], bytes]]:
    """A body framed by its exact Content-Length, or chunked (properly)."""
    if exact:
        return st.just(([(b"Content-Length", str(len(body)).encode())], body))
    chunk = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
    return st.just(([(b"Transfer-Encoding", b"chunked")], chunk + b"0\r\n\r\n"))
