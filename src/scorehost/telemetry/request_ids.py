"""The reference server's request-id headers: which ids a reply echoes, and which id the logs use."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Mapping

from scorehost.errors import RequestIdTooLong

__all__ = ["HEADER_KEYS", "new_request_id", "request_ids", "request_ids_of"]

# The headers request_ids() reads, with their WSGI environ keys.
HEADER_KEYS = (
    ("x-request-id", "HTTP_X_REQUEST_ID"),
    ("x-ms-request-id", "HTTP_X_MS_REQUEST_ID"),
    ("x-ms-client-request-id", "HTTP_X_MS_CLIENT_REQUEST_ID"),
    ("traceid", "HTTP_TRACEID"),
)

_MAX_LENGTH = 100


def new_request_id() -> str:
    """A UUID4-shaped id: this process's random prefix and a counter. Ids must be unique, not secret;
    a random UUID per request (`uuid.uuid4()`) costs a system call and a few microseconds."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFF:08x}"


def _new_prefix() -> None:
    """Each process (forked workers included) numbers its ids after a random prefix of its own."""
    global _prefix
    # the UUID version nibble and variant bits, at their places in the first 96 of 128 bits
    bits = random.SystemRandom().getrandbits(96) & ~(0xF << 44) & ~(0x3 << 30) | (0x4 << 44) | (0x2 << 30)
    text = f"{bits:024x}"
    _prefix = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:24]}"


_prefix = ""
_counter = itertools.count()
_new_prefix()
os.register_at_fork(after_in_child=_new_prefix)


def request_ids_of(
    environ: Mapping[str, object],
) -> tuple[str, list[tuple[str, str]], RequestIdTooLong | None]:
    """`request_ids()` for a WSGI environ, never raising: an id header that is too long comes back as the refusal
    to answer with, beside the ids the answer still carries (the valid ones, or new ones)."""
    if (  # spelled out: a generator over HEADER_KEYS costs a microsecond on every request
        "HTTP_X_REQUEST_ID" in environ
        or "HTTP_X_MS_REQUEST_ID" in environ
        or "HTTP_X_MS_CLIENT_REQUEST_ID" in environ
        or "HTTP_TRACEID" in environ
    ):
        sent = {name: str(environ[key]) for name, key in HEADER_KEYS if key in environ}
        try:
            return (*request_ids(sent), None)
        except RequestIdTooLong as refusal:
            valid = {name: value for name, value in sent.items() if len(value) <= _MAX_LENGTH}
            return (*request_ids(valid), refusal)
    request_id = new_request_id()  # the usual case: the client sent no ids
    return request_id, [("x-request-id", request_id), ("x-ms-request-id", request_id)], None


def request_ids(headers: Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """Return the request's id for logs and the id headers to send back (headers keyed in lower case)."""
    request_id = headers.get("x-request-id")
    ms_request_id = headers.get("x-ms-request-id")
    client_request_id = headers.get("x-ms-client-request-id")
    if request_id is not None and len(request_id) > _MAX_LENGTH:
        raise RequestIdTooLong(f"x-request-id must not exceed {_MAX_LENGTH} characters")
    for value in (ms_request_id, client_request_id):
        if value is not None and len(value) > _MAX_LENGTH:
            raise RequestIdTooLong(
                f"x-ms-request-id and x-ms-client-request-id must not exceed {_MAX_LENGTH} characters"
            )
    request_id = request_id or new_request_id()
    reply = [
        ("x-request-id", request_id),
        ("x-ms-request-id", ms_request_id or client_request_id or request_id),
    ]
    if client_request_id or ms_request_id:
        reply.append(("x-ms-client-request-id", client_request_id or ms_request_id or ""))
    trace_id = headers.get("traceid")
    if trace_id is not None:
        reply.append(("TraceId", trace_id))
    return request_id, reply
