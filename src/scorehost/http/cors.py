"""Cross-origin resource sharing: which browser origins may call the server, and what preflights answer.

The configuration is the reference's (`--cors-origins` / `AML_CORS_ORIGINS`): origins separated by
commas, whitespace stripped, empty entries ignored; `*` allows every origin; an entry holding one of
the characters ``* \\ [ ] ? $ ^ ( )`` is a regular expression; all matching ignores case. A matching
request gets `Access-Control-Allow-Origin: <its Origin>`; a preflight (OPTIONS) whose requested
method is allowed also gets `Access-Control-Allow-Methods` (the allowed methods, sorted) and
`Access-Control-Allow-Headers` (the requested headers, sorted), never `Max-Age` or credentials.

Where the reference (flask-cors) is unsafe or inconsistent, scorehost differs, on purpose:

- **No `Origin`, no `Access-Control-Allow-Origin`.** The reference answers a request without an
  `Origin` header with the alphabetically first configured origin (`*` when configured). Browsers
  send `Origin` on every cross-origin request, so the header is useless to them; it only discloses
  part of the configuration to any client. No script can see or rely on response headers the server
  adds. We send nothing but `Vary: Origin`.
- **`Vary: Origin` on every reply** while CORS is on, matching or not: the reply does depend on
  `Origin`, so a shared cache must not hand one origin's reply to another. The reference sends it
  only with a match and more than one origin or a regex.
- **Regular expressions match the whole origin.** The reference matches a prefix, so
  `https://.*\\.example\\.com` would admit `https://a.example.com.evil.net`.
- **Allowed methods are compared exactly** (after upper-casing, as the reference does), not as a
  substring of `"GET, POST"`; an `Origin` or requested header that is not visible ASCII is never
  echoed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["CorsPolicy"]

Headers = list[tuple[str, str]]

_REGEX_HINTS = frozenset("*\\[]?$^()")
_VARY = ("vary", "Origin")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110 token)


class CorsPolicy:
    """Allowed origins and methods. For an OPTIONS request call `preflight_headers`, for any other
    `response_headers`, and add what they return to the reply."""

    __slots__ = ("_allow_methods", "_any", "_literals", "_methods", "_patterns")

    def __init__(self, literals: frozenset[str], patterns: Sequence[re.Pattern[str]], methods: Sequence[str]) -> None:
        self._literals = literals  # case-folded
        self._patterns = tuple(patterns)
        self._any = any(pattern.pattern == ".*" for pattern in self._patterns)
        self._methods = frozenset(method.upper() for method in methods)
        self._allow_methods = ", ".join(sorted(self._methods))

    @classmethod
    def parse(cls, origins: str | None, methods: Sequence[str] = ("GET", "POST")) -> CorsPolicy | None:
        """The policy for an `--cors-origins` value; None when it names no origin (CORS off).

        Raises ValueError for an entry that looks like a regular expression but does not compile."""
        literals: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for raw in (origins or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                entry = ".*"
            if _REGEX_HINTS.isdisjoint(entry):
                literals.add(entry.casefold())
                continue
            try:
                patterns.append(re.compile(entry, re.IGNORECASE))
            except re.error as error:
                raise ValueError(
                    f"CORS origin {entry!r} contains regular-expression characters but is not a valid regular "
                    f"expression: {error}. Escape them with a backslash or fix the expression."
                ) from None
        if not literals and not patterns:
            return None
        return cls(frozenset(literals), patterns, methods)

    def allows(self, origin: str | None) -> bool:
        """Whether a request from `origin` may read the reply."""
        if not origin or not _visible_ascii(origin):
            return False
        if self._any or origin.casefold() in self._literals:
            return True
        return any(pattern.fullmatch(origin) for pattern in self._patterns)

    def response_headers(self, origin: str | None) -> Headers:
        """Headers for an ordinary (not OPTIONS) reply to a request carrying `origin`."""
        if self.allows(origin):
            assert origin is not None
            return [("access-control-allow-origin", origin), _VARY]
        return [_VARY]

    def preflight_headers(self, origin: str | None, request_method: str | None, request_headers: str | None) -> Headers:
        """Headers for a reply to OPTIONS, given its `Origin`, `Access-Control-Request-Method` and
        `Access-Control-Request-Headers` (None when absent). A requested method that is not allowed
        gets only the origin, so the browser refuses the real request."""
        if not self.allows(origin):
            return [_VARY]
        assert origin is not None
        headers = [("access-control-allow-origin", origin)]
        if request_method and request_method.upper() in self._methods:
            echoed = _header_names(request_headers)
            if echoed:
                headers.append(("access-control-allow-headers", echoed))
            headers.append(("access-control-allow-methods", self._allow_methods))
        headers.append(_VARY)
        return headers


def _header_names(requested: str | None) -> str:
    """The requested header names, stripped and sorted; anything that is not a header name is dropped."""
    if not requested:
        return ""
    return ", ".join(sorted(name for name in (part.strip() for part in requested.split(",")) if _TOKEN.fullmatch(name)))


def _visible_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable() and " " not in value
