"""`GET /docs`: an interactive API page (Swagger UI) for the service, served offline from the
`swagger-ui-bundle` package.

The page is ours: a few lines of HTML that load Swagger UI's files and a small start-up script from
`/docs/<asset>`, with no inline script or style, so it runs under the strict Content-Security-Policy
it is sent with. Its URLs are relative to the page, so it also works when a proxy serves the server
under a path prefix. Only the files listed from the package's folder when the page is built can be
served, looked up by exact name: no path from a request ever reaches the file system.
"""

from __future__ import annotations

import hashlib
import html
import os
import threading
from pathlib import Path

import orjson

from scorehost.host.encode import JSON

__all__ = ["DocsPage"]

Answer = tuple[int, list[tuple[str, str]], bytes]

_PREFIX = "/docs/"
_ALLOW = "GET, HEAD, OPTIONS"
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".png": "image/png",
}
# The package's own start-up script would load the Swagger pet store from the internet.
_NOT_SERVED = frozenset({"swagger-initializer.js"})
_STARTER = "scorehost-docs.js"
_STARTER_JS = b"""\
// Starts Swagger UI on the document the page names (the page holds no script, for its CSP).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
# Swagger UI sets style attributes and draws icons from data: URLs. Its requests may go to any server
# the document lists (a user-supplied document may name the cloud endpoint); code comes only from here.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src *; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_ASSET_CACHE = "public, max-age=31536000, immutable"  # the page names assets with a version query
_NOSNIFF = ("x-content-type-options", "nosniff")


class DocsPage:
    """Answers `/docs`, `/docs/` and `/docs/<asset>`; `answer()` gives None for any other path."""

    def __init__(
        self, spec_url: str = "/swagger.json?version=3", title: str = "scorehost", *, folder: Path | None = None
    ) -> None:
        self._folder = _swagger_ui_folder() if folder is None else folder
        self._files = _list_files(self._folder)
        self._version = hashlib.sha256(self._folder.name.encode() + _STARTER_JS).hexdigest()[:12]
        self._cache: dict[str, Answer] = {_STARTER: _asset(_STARTER_JS, _TYPES[".js"])}
        self._lock = threading.Lock()
        # "/docs" and "/docs/" are different folders to the browser, so each gets its own relative URLs.
        self._pages = {
            "/docs": self._page(spec_url, title, assets="docs/", up=""),
            "/docs/": self._page(spec_url, title, assets="", up="../"),
        }
        self._pages["/docs/index.html"] = self._pages["/docs/"]

    def answer(self, path: str, method: str) -> Answer | None:
        """The reply for `path`, or None when it is none of ours. HEAD has GET's headers and no body."""
        found = self._pages.get(path)
        if found is None:
            if not path.startswith(_PREFIX):
                return None
            found = self._asset(path[len(_PREFIX) :])
            if found is None:
                return None
        if method == "GET":
            return found
        if method == "HEAD":
            return found[0], found[1], b""
        if method == "OPTIONS":
            return 200, [("content-type", "text/plain; charset=utf-8"), ("content-length", "0"), ("allow", _ALLOW)], b""
        body = orjson.dumps({"message": f"{method} is not allowed on {path}; use {_ALLOW}."})
        return 405, [("content-type", JSON), ("content-length", str(len(body))), ("allow", _ALLOW)], body

    def _asset(self, name: str) -> Answer | None:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        found = self._files.get(name)
        if found is None:
            return None
        path, content_type = found
        with self._lock:  # read each file once, even when the first requests for it arrive together
            cached = self._cache.get(name)
            if cached is None:
                cached = self._cache[name] = _asset(path.read_bytes(), content_type)
        return cached

    def _page(self, spec_url: str, title: str, *, assets: str, up: str) -> Answer:
        if spec_url.startswith("/") and not spec_url.startswith("//"):
            spec_url = up + spec_url[1:]  # relative to the page, which lives at <prefix>/docs
        v = f"?v={self._version}"
        body = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} API</title>
<link rel="stylesheet" href="{assets}swagger-ui.css{v}">
<link rel="stylesheet" href="{assets}index.css{v}">
<link rel="icon" type="image/png" href="{assets}favicon-32x32.png{v}" sizes="32x32">
<link rel="icon" type="image/png" href="{assets}favicon-16x16.png{v}" sizes="16x16">
</head>
<body>
<div id="swagger-ui" data-spec-url="{html.escape(spec_url)}"></div>
<script src="{assets}swagger-ui-bundle.js{v}"></script>
<script src="{assets}{_STARTER}{v}"></script>
</body>
</html>
""".encode()
        headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", str(len(body))),
            ("cache-control", "no-cache"),
            ("content-security-policy", _CSP),
            _NOSNIFF,
        ]
        return 200, headers, body


def _swagger_ui_folder() -> Path:
    import swagger_ui_bundle  # type: ignore[import-untyped]  # untyped; imported here, when a page is built

    folder = Path(str(swagger_ui_bundle.swagger_ui_path))
    if not folder.is_dir():
        raise RuntimeError(f"swagger-ui-bundle's files are not a folder on disk: {folder}")
    return folder


def _list_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """The servable files by name, with their content type: regular files of a known type that really
    lie in `folder`."""
    root = Path(os.path.realpath(folder))
    files: dict[str, tuple[Path, str]] = {}
    for entry in os.scandir(root):
        content_type = _TYPES.get(os.path.splitext(entry.name)[1])
        if content_type is None or entry.name in _NOT_SERVED or entry.name == _STARTER:
            continue
        real = Path(os.path.realpath(entry.path))  # a link counts only if it stays in the folder
        if real.parent == root and real.is_file():
            files[entry.name] = (real, content_type)
    return files


def _asset(body: bytes, content_type: str) -> Answer:
    headers = [
        ("content-type", content_type),
        ("content-length", str(len(body))),
        ("cache-control", _ASSET_CACHE),
        _NOSNIFF,
    ]
    return 200, headers, body
