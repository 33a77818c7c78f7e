"""`AMLResponse`: what a `@rawhttp` `run()` returns to control status, headers and body (contract §9)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response

__all__ = ["RUN_FUNCTION_FAILED_HEADER", "AMLResponse"]

RUN_FUNCTION_FAILED_HEADER = "x-ms-run-function-failed"
_JSON = "application/json"  # no charset, as the reference sends it


class AMLResponse(Response):
    """A Werkzeug response built the way the reference server builds it.

    * `message=None` → body `{}` as `application/json`, whatever `json_str` says;
    * `json_str=True` → body `json.dumps(message)` as `application/json`;
    * otherwise `message` (str, bytes, or an iterable, streamed when it has no length) is the body,
      `text/html; charset=utf-8` unless `response_headers` names a `Content-Type`, which replaces it;
    * each other `response_headers` value is split on commas and sent as repeated header lines
      (`{"X-Multi": "a, b"}` → `X-Multi: a` and `X-Multi: b`);
    * `x-ms-run-function-failed` is always set, `True` or `False`.

    Unlike the reference, `response_headers=None` is accepted and `message`/`status_code` have defaults.
    """

    # Flask's Response (what the reference subclasses) defaults to HTML; Werkzeug's to plain text.
    default_mimetype: str | None = "text/html"

    def __init__(
        self,
        message: Any = None,
        status_code: int | str | HTTPStatus = 200,
        response_headers: Mapping[str, Any] | Headers | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        extra = list(response_headers.items()) if response_headers is not None else []
        content_type = None
        if message is None:
            body, content_type = "{}", _JSON
        elif json_str:
            body, content_type = json.dumps(message), _JSON
        else:
            body = message
        for name, value in extra:
            if name.lower() == "content-type":
                content_type = str(value)
        super().__init__(body, status=status_code, content_type=content_type)
        self.headers[RUN_FUNCTION_FAILED_HEADER] = str(bool(run_function_failed))
        for name, value in extra:
            if name.lower() != "content-type":
                for piece in _split(value):
                    self.headers.add(name, piece)


def _split(value: Any) -> Iterable[str]:
    # The reference splits every value on commas, so a date such as "Tue, 01 Jan" becomes two lines too.
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        yield from (piece.strip() for piece in str(item).split(","))
