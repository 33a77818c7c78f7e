"""GET /docs: DocsPage's answers (page, assets, methods, traversal attempts) and the page in a real
headless Chromium driven by Selenium: it loads offline, lists /score, and "Try it out" gets a prediction."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from _docs_browser import chromium, try_it_out
from conftest import Server, served
from selenium.webdriver.remote.webdriver import WebDriver

from scorehost.http.docs_page import DocsPage


@pytest.fixture(scope="module")
def docs() -> DocsPage:
    return DocsPage()


@pytest.fixture(scope="module")
def folder() -> Path:
    import swagger_ui_bundle

    return Path(str(swagger_ui_bundle.swagger_ui_path))


def header(headers: list[tuple[str, str]], name: str) -> str:
    values = [value for key, value in headers if key == name]
    assert len(values) == 1, (name, headers)
    return values[0]


def answer(docs: DocsPage, path: str, method: str = "GET") -> tuple[int, list[tuple[str, str]], bytes]:
    found = docs.answer(path, method)
    assert found is not None, path
    return found


# --- The page ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "assets", "spec"), [("/docs", "docs/", ""), ("/docs/", "", "../")])
def test_page_loads_assets_and_spec_relative_to_itself(docs: DocsPage, path: str, assets: str, spec: str) -> None:
    status, headers, body = answer(docs, path)
    page = body.decode()
    assert status == 200
    assert header(headers, "content-type") == "text/html; charset=utf-8"
    assert header(headers, "content-length") == str(len(body))
    assert header(headers, "cache-control") == "no-cache"
    assert f'data-spec-url="{spec}swagger.json?version=3"' in page
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "scorehost-docs.js"):
        assert re.search(rf'(src|href)="{re.escape(assets + name)}\?v=\w+"', page), name


def test_index_html_is_the_page(docs: DocsPage) -> None:
    assert answer(docs, "/docs/index.html") == answer(docs, "/docs/")


def test_page_needs_no_network_and_no_inline_code(docs: DocsPage) -> None:
    page = answer(docs, "/docs")[2].decode()
    assert "//" not in page  # no absolute URL: no CDN, no other host
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) == 2
    assert all(" src=" in attributes and not code for attributes, code in scripts)
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son\w+=", page)  # no event-handler attributes


def test_page_is_sent_with_a_strict_csp(docs: DocsPage) -> None:
    csp = header(answer(docs, "/docs")[1], "content-security-policy")
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp  # no 'unsafe-inline', no 'unsafe-eval' for scripts
    assert header(answer(docs, "/docs")[1], "x-content-type-options") == "nosniff"


def test_title_and_spec_url_are_escaped() -> None:
    page = answer(DocsPage(spec_url='/s.json?a=1&b="2"', title="<My & model>"), "/docs")[2].decode()
    assert "<title>&lt;My &amp; model&gt; API</title>" in page
    assert 'data-spec-url="s.json?a=1&amp;b=&quot;2&quot;"' in page


def test_an_absolute_spec_url_is_kept() -> None:
    page = answer(DocsPage(spec_url="https://api.example/swagger.json"), "/docs/")[2].decode()
    assert 'data-spec-url="https://api.example/swagger.json"' in page


# --- Assets -----------------------------------------------------------------------------------------

TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
    "swagger-ui-bundle.js.map": "application/json; charset=utf-8",
}


@pytest.mark.parametrize(("name", "content_type"), TYPES.items())
def test_assets_come_from_the_package(docs: DocsPage, folder: Path, name: str, content_type: str) -> None:
    status, headers, body = answer(docs, f"/docs/{name}")
    assert status == 200
    assert body == (folder / name).read_bytes()
    assert header(headers, "content-type") == content_type
    assert header(headers, "content-length") == str(len(body))
    assert header(headers, "cache-control") == "public, max-age=31536000, immutable"
    assert header(headers, "x-content-type-options") == "nosniff"


def test_every_asset_the_page_names_is_served(docs: DocsPage) -> None:
    page = answer(docs, "/docs/")[2].decode()
    names = re.findall(r'(?:src|href)="([^"?]+)\?v=', page)
    assert len(names) == 6
    for name in names:
        assert answer(docs, f"/docs/{name}")[0] == 200


def test_starter_script_points_swagger_ui_at_the_page_spec(docs: DocsPage) -> None:
    status, headers, body = answer(docs, "/docs/scorehost-docs.js")
    assert status == 200
    assert header(headers, "content-type") == "text/javascript; charset=utf-8"
    assert b'getAttribute("data-spec-url")' in body
    assert b"validatorUrl: null" in body  # Swagger UI's default validator is an online service


def test_asset_version_changes_with_the_bundle(tmp_path: Path, folder: Path) -> None:
    copy = tmp_path / "swagger-ui-9.9.9"
    copy.mkdir()
    shutil.copy(folder / "swagger-ui.css", copy)
    ours = re.search(r"\?v=(\w+)", answer(DocsPage(), "/docs")[2].decode())
    theirs = re.search(r"\?v=(\w+)", answer(DocsPage(folder=copy), "/docs")[2].decode())
    assert ours
    assert theirs
    assert ours.group(1) != theirs.group(1)


@pytest.mark.parametrize(
    "name", ["index.j2", "swagger-initializer.js", "oauth2-redirect.html", "missing.js", "favicon.ico"]
)
def test_package_files_we_do_not_use_and_unknown_names_are_not_ours(docs: DocsPage, name: str) -> None:
    # swagger-initializer.js would load the Swagger pet store from the internet.
    assert docs.answer(f"/docs/{name}", "GET") is None


@pytest.mark.parametrize("path", ["/", "/score", "/swagger.json", "/doc", "/docsx", "/docs.css", "/DOCS", "/x/docs"])
def test_other_paths_are_not_ours(docs: DocsPage, path: str) -> None:
    assert docs.answer(path, "GET") is None


# --- Methods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/docs/", "/docs/swagger-ui-bundle.js", "/docs/favicon-16x16.png"])
def test_head_has_get_headers_and_no_body(docs: DocsPage, path: str) -> None:
    got = answer(docs, path)
    head = answer(docs, path, "HEAD")
    assert head == (got[0], got[1], b"")
    assert header(head[1], "content-length") == str(len(got[2]))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE"])
@pytest.mark.parametrize("path", ["/docs", "/docs/swagger-ui.css"])
def test_other_methods_are_405_with_allow(docs: DocsPage, method: str, path: str) -> None:
    status, headers, body = answer(docs, path, method)
    assert status == 405
    assert header(headers, "allow") == "GET, HEAD, OPTIONS"
    assert header(headers, "content-type") == "application/json"
    assert method in json.loads(body)["message"]


def test_options_lists_the_methods(docs: DocsPage) -> None:
    assert answer(docs, "/docs", "OPTIONS") == (
        200,
        [("content-type", "text/plain; charset=utf-8"), ("content-length", "0"), ("allow", "GET, HEAD, OPTIONS")],
        b"",
    )


def test_unknown_asset_is_none_whatever_the_method(docs: DocsPage) -> None:
    assert docs.answer("/docs/nothing.js", "POST") is None
    assert docs.answer("/docs/nothing.js", "HEAD") is None


# --- Nothing outside the package's folder -----------------------------------------------------------

TRAVERSALS = [
    "../swagger.json",
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",  # double encoded
    "..%252f..%252fetc%252fpasswd",
    "..\\..\\etc\\passwd",
    "..%5c..%5cetc%5cpasswd",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",  # overlong UTF-8
    "..%c0%af..%c0%afetc%c0%afpasswd",
    "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd",  # full-width dots and slash
    "/etc/passwd",
    "//etc/passwd",
    "file:///etc/passwd",
    "./swagger-ui.css",
    "swagger-ui.css/",
    "swagger-ui.css/.",
    "swagger-ui.css%00.png",
    "swagger-ui.css\x00",
    "SWAGGER-UI.CSS",
    " swagger-ui.css",
    "../swagger-ui-4.15.5/swagger-ui.css",
    "../__init__.py",
    "..",
    ".",
    "~/.bashrc",
    "C:\\Windows\\win.ini",
]


def _forms(attempt: str) -> set[str]:
    """The attempt as sent, and decoded once and twice, as a server may hand any of them to the app."""
    once = urllib.parse.unquote(attempt, errors="surrogateescape")
    latin1 = urllib.parse.unquote_to_bytes(attempt).decode("latin-1")  # WSGI's PATH_INFO
    return {attempt, once, urllib.parse.unquote(once), latin1}


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_traversal_attempts_are_refused(docs: DocsPage, folder: Path, attempt: str) -> None:
    for form in _forms(attempt):
        for method in ("GET", "HEAD"):
            assert docs.answer("/docs/" + form, method) is None, form
    assert docs.answer("/docs/" + str(folder / "swagger-ui.css"), "GET") is None  # an absolute path, even inside


def test_links_out_of_the_folder_are_never_served(tmp_path: Path) -> None:
    outside = tmp_path / "secret.css"
    outside.write_text("body { secret: 1 }")
    vendor = tmp_path / "swagger-ui-1.0.0"
    (vendor / "sub").mkdir(parents=True)
    (vendor / "real.css").write_text("body {}")
    (vendor / "sub" / "nested.css").write_text("p {}")
    (vendor / "notes.txt").write_text("not an asset type")
    os.symlink(outside, vendor / "out.css")
    os.symlink("../secret.css", vendor / "relative-out.css")
    os.symlink(vendor / "real.css", vendor / "inside.css")
    os.symlink(tmp_path, vendor / "up.css")  # a folder, named like a file
    os.symlink(vendor / "missing.css", vendor / "dangling.css")
    page = DocsPage(folder=vendor)
    assert answer(page, "/docs/real.css")[2] == b"body {}"
    assert answer(page, "/docs/inside.css")[2] == b"body {}"
    for name in ("out.css", "relative-out.css", "up.css", "dangling.css", "sub/nested.css", "sub", "notes.txt"):
        assert page.answer(f"/docs/{name}", "GET") is None, name
    assert page.answer("/docs/up.css/secret.css", "GET") is None


def test_a_file_added_after_start_is_not_served(tmp_path: Path) -> None:
    vendor = tmp_path / "swagger-ui-1.0.0"
    vendor.mkdir()
    page = DocsPage(folder=vendor)
    (vendor / "late.css").write_text("body {}")
    assert page.answer("/docs/late.css", "GET") is None


# --- A real server ----------------------------------------------------------------------------------


def raw_get(base_url: str, target: str) -> bytes:
    """Send `target` byte for byte (no client-side normalisation of `..`) and return the whole reply."""
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        return b"".join(iter(lambda: sock.recv(65536), b""))


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with served("typed_sklearn_numpy.py") as running:
        yield running


@pytest.mark.parametrize("attempt", [t for t in TRAVERSALS if t.isascii() and "\x00" not in t and " " not in t])
def test_traversal_over_http_is_refused(server: Server, attempt: str) -> None:
    reply = raw_get(server.url, "/docs/" + attempt)
    status = reply.split(maxsplit=2)[1]
    assert status in (b"400", b"404"), (attempt, reply[:200])
    assert b"root:" not in reply


def test_page_and_assets_over_http(server: Server) -> None:
    with server.client() as client:
        page = client.get("/docs")
        asset = client.get("/docs/swagger-ui-bundle.js?v=anything")
        head = client.head("/docs/swagger-ui.css")
        missing = client.get("/docs/nothing.js")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 100_000
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"


# --- In a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.mark.parametrize("page", ["/docs", "/docs/"])
def test_try_it_out_in_a_browser(browser: WebDriver, server: Server, page: str) -> None:
    with server.client() as client:
        document = client.get("/swagger.json", params={"version": "3"}).json()
        example = document["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["example"]
        expected = client.post("/score", json=example).json()
    assert expected == [1, 0]  # typed_sklearn_numpy.py's example rows: a positive sum, then a negative one

    result = try_it_out(browser, server.url + page)
    assert "/score" in result.paths
    assert json.loads(result.request_body) == example  # the OpenAPI document's example, filled in
    assert result.status == "200"
    assert json.loads(result.response_body) == expected
    assert all(url.startswith(server.url + "/") for url in result.resources), result.resources  # offline
    assert result.console_errors == []  # no CSP violation, no script error
