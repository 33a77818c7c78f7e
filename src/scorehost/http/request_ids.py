"""The reference server's request-id headers: which ids a reply echoes, and which id the logs use."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from scorehost.errors import ScorehostError

__all__ = ["RequestIdTooLong", "request_ids"]

_MAX_LENGTH = 100


class RequestIdTooLong(ScorehostError):
    """A request-id header is longer than the reference allows."""

    status_code = 431


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
    request_id = request_id or str(uuid.uuid4())
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
