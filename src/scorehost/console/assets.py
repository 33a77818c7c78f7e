"""The console's static files, shipped in the wheel: looked up by exact name from a fixed list, so no path a
request names ever reaches the file system."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

__all__ = ["Asset", "asset", "asset_version"]

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# htmx 2.0.11 (BSD-0-Clause) and uPlot 1.6.32 (MIT), vendored from the npm registry unchanged: static/LICENSES.md.
NAMES = ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "console.css", "console.js", "favicon.svg")

Asset = tuple[bytes, str]


@cache
def asset(name: str) -> Asset | None:
    """The file's bytes and content type, or None for a name not in the list."""
    if name not in NAMES:
        return None
    data = files("scorehost.console").joinpath("static", name).read_bytes()
    return data, _TYPES[name[name.rindex(".") :]]


@cache
def asset_version() -> str:
    """A digest of every asset, added to their URLs so that browsers may keep them for a year."""
    digest = hashlib.sha256()
    for name in NAMES:
        found = asset(name)
        digest.update(found[0] if found else b"")
    return digest.hexdigest()[:12]
