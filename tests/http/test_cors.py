"""CORS: CorsPolicy against the reference's observed behaviour (contract §11) and our documented departures,
then real servers' replies, then a real browser's cross-origin call with its preflight."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator

import httpx
import pytest
from _docs_browser import chromium
from conftest import SCRIPTS, Server, kill, served, start_server
from selenium.webdriver.remote.webdriver import WebDriver

from scorehost.http.cors import CorsPolicy

TWO = "http://allowed.example, https://other.example"
VARY = ("vary", "Origin")


def policy(origins: str, methods: tuple[str, ...] = ("GET", "POST")) -> CorsPolicy:
    parsed = CorsPolicy.parse(origins, methods)
    assert parsed is not None
    return parsed


def acao(headers: list[tuple[str, str]]) -> str | None:
    values = [value for name, value in headers if name == "access-control-allow-origin"]
    assert len(values) <= 1
    return values[0] if values else None


@pytest.mark.parametrize("origins", [None, "", "   ", ",", " , ,"])
def test_no_origins_means_cors_off(origins: str | None) -> None:
    assert CorsPolicy.parse(origins) is None


def test_matching_origin_is_echoed_with_vary() -> None:
    assert policy(TWO).response_headers("https://other.example") == [
        ("access-control-allow-origin", "https://other.example"),
        VARY,
    ]


@pytest.mark.parametrize("origin", ["HTTP://ALLOWED.EXAMPLE", "http://Allowed.Example", "https://OTHER.example"])
def test_matching_ignores_case_and_echoes_the_request_spelling(origin: str) -> None:
    assert acao(policy(TWO).response_headers(origin)) == origin


@pytest.mark.parametrize("origins", ["  http://allowed.example  ,https://other.example ", "http://allowed.example,,"])
def test_entries_are_stripped_and_empty_ones_ignored(origins: str) -> None:
    assert acao(policy(origins).response_headers("http://allowed.example")) == "http://allowed.example"


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://allowed.example:8080",  # another port is another origin
        "https://allowed.example",  # another scheme too
        "http://allowed.example.evil.net",
        "http://allowed.exampl",
        "null",
        "",
    ],
)
def test_other_origins_get_no_cors_headers(origin: str) -> None:
    assert policy(TWO).response_headers(origin) == [VARY]


def test_without_origin_nothing_is_allowed() -> None:
    # Departure from the reference, which sends the alphabetically first literal origin (module docstring).
    assert policy(TWO).response_headers(None) == [VARY]
    assert policy("*").response_headers(None) == [VARY]
    assert policy(TWO).preflight_headers(None, "POST", "content-type") == [VARY]


@pytest.mark.parametrize("origin", ["http://anything.example", "https://x.y:1234", "null", "HTTP://UPPER.EXAMPLE"])
def test_star_allows_every_origin_and_echoes_it(origin: str) -> None:
    assert policy("*").response_headers(origin) == [("access-control-allow-origin", origin), VARY]


def test_star_among_other_entries() -> None:
    assert acao(policy("http://a.example, *").response_headers("http://b.example")) == "http://b.example"


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (r"https://.*\.example\.com", "https://api.example.com", True),
        (r"https://.*\.example\.com", "HTTPS://API.EXAMPLE.COM", True),  # regexes ignore case too
        (r"https://.*\.example\.com", "https://example.com", False),
        # The whole origin must match: the reference's prefix match would admit this one.
        (r"https://.*\.example\.com", "https://api.example.com.evil.net", False),
        (r"http://localhost:\d+", "http://localhost:5173", True),
        (r"http://localhost:\d+", "http://localhost", False),
        (r"^https://(a|b)\.example$", "https://b.example", True),
        (r"https?://app\.example", "http://app.example", True),
        (r"[a-z]+://x\.example", "ftp://x.example", True),
    ],
)
def test_regex_entries(origins: str, origin: str, allowed: bool) -> None:
    headers = policy(origins).response_headers(origin)
    assert acao(headers) == (origin if allowed else None)
    assert VARY in headers


def test_dots_alone_do_not_make_a_regex() -> None:
    # "." is not a regex hint (as on the reference): the entry is compared literally.
    assert acao(policy("http://a.example").response_headers("http://aXexample")) is None


def test_literal_and_regex_entries_together() -> None:
    mixed = policy(r"http://plain.example, https://.*\.dyn\.example")
    assert acao(mixed.response_headers("http://plain.example")) == "http://plain.example"
    assert acao(mixed.response_headers("https://x.dyn.example")) == "https://x.dyn.example"
    assert acao(mixed.response_headers("https://x.other.example")) is None


@pytest.mark.parametrize("entry", ["https://(unclosed.example", "https://[z-a].example", "*x*", "https://a.example)"])
def test_an_invalid_regex_is_a_clear_error(entry: str) -> None:
    with pytest.raises(ValueError, match="not a valid regular expression") as caught:
        CorsPolicy.parse(f"http://ok.example, {entry}")
    assert repr(entry) in str(caught.value)


def test_single_origin_also_varies() -> None:
    # The reference omits Vary with a single literal origin; the reply still depends on Origin.
    one = policy("http://allowed.example")
    assert one.response_headers("http://allowed.example") == [
        ("access-control-allow-origin", "http://allowed.example"),
        VARY,
    ]
    assert one.response_headers("http://other.example") == [VARY]


def test_preflight_for_an_allowed_method() -> None:
    headers = policy(TWO).preflight_headers("http://allowed.example", "POST", "Content-Type, Authorization")
    assert headers == [
        ("access-control-allow-origin", "http://allowed.example"),
        ("access-control-allow-headers", "Authorization, Content-Type"),
        ("access-control-allow-methods", "GET, POST"),
        VARY,
    ]
    names = {name for name, _ in headers}
    assert "access-control-max-age" not in names
    assert "access-control-allow-credentials" not in names


@pytest.mark.parametrize("method", ["GET", "post", "Post"])
def test_preflight_method_is_upper_cased(method: str) -> None:
    headers = policy(TWO).preflight_headers("http://allowed.example", method, None)
    assert ("access-control-allow-methods", "GET, POST") in headers


def test_preflight_without_requested_headers_has_no_allow_headers() -> None:
    for requested in (None, "", " , "):
        headers = policy(TWO).preflight_headers("http://allowed.example", "POST", requested)
        assert headers == [
            ("access-control-allow-origin", "http://allowed.example"),
            ("access-control-allow-methods", "GET, POST"),
            VARY,
        ]


def test_preflight_echoes_requested_headers_sorted_and_stripped() -> None:
    headers = dict(policy(TWO).preflight_headers("http://allowed.example", "POST", " x-b ,content-type,  x-a"))
    assert headers["access-control-allow-headers"] == "content-type, x-a, x-b"


def test_preflight_drops_what_is_not_a_header_name() -> None:
    requested = "content-type, bad header, x:y, ok-one, caf\u00e9"
    headers = dict(policy(TWO).preflight_headers("http://allowed.example", "POST", requested))
    assert headers["access-control-allow-headers"] == "content-type, ok-one"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "T, P", "GET, POST", "OST", None, ""])
def test_preflight_for_another_method_gets_only_the_origin(method: str | None) -> None:
    # Exact comparison: the reference's substring test would accept "T, P" or "OST".
    assert policy(TWO).preflight_headers("http://allowed.example", method, "content-type") == [
        ("access-control-allow-origin", "http://allowed.example"),
        VARY,
    ]


def test_preflight_from_another_origin_gets_nothing() -> None:
    assert policy(TWO).preflight_headers("http://evil.example", "POST", "content-type") == [VARY]


def test_methods_are_a_constructor_argument() -> None:
    raw = policy(TWO, methods=("POST", "get", "PUT", "DELETE", "OPTIONS", "put"))
    headers = dict(raw.preflight_headers("http://allowed.example", "PUT", None))
    assert headers["access-control-allow-methods"] == "DELETE, GET, OPTIONS, POST, PUT"
    assert "access-control-allow-methods" in dict(raw.preflight_headers("http://allowed.example", "delete", None))
    assert "access-control-allow-methods" not in dict(raw.preflight_headers("http://allowed.example", "PATCH", None))


@pytest.mark.parametrize(
    "origin", ["http://allowed.example\r\nx-injected: 1", "http://allowed.example ", "http://é.example"]
)
def test_origins_that_are_not_visible_ascii_are_never_echoed(origin: str) -> None:
    assert policy("*").response_headers(origin) == [VARY]
    assert policy("*").preflight_headers(origin, "POST", None) == [VARY]


def test_allows() -> None:
    two = policy(TWO)
    assert two.allows("http://allowed.example")
    assert not two.allows("http://evil.example")
    assert not two.allows(None)


def test_returned_lists_are_fresh() -> None:
    # Callers append their own headers to what we return; that must not leak into the next reply.
    two = policy(TWO)
    first = two.response_headers(None)
    first.append(("x", "y"))
    assert two.response_headers(None) == [VARY]


# --- A real server: --cors-origins / AML_CORS_ORIGINS on its replies ---------------------------------

ALLOWED = "http://allowed.example"
CORS_NAMES = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers")


def cors_of(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in CORS_NAMES if name in response.headers}


@pytest.fixture(scope="module")
def two_origins() -> Iterator[Server]:
    with served("run_raises.py", "--cors-origins", TWO) as server:
        yield server


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("GET", "/swagger.json"), ("POST", "/score"), ("GET", "/score")]
)
def test_server_allows_a_configured_origin(two_origins: Server, method: str, path: str) -> None:
    with two_origins.client() as client:
        response = client.request(method, path, headers={"Origin": "HTTP://Allowed.Example"}, json={"data": 1})
    assert cors_of(response) == {"access-control-allow-origin": "HTTP://Allowed.Example"}
    assert response.headers["vary"] == "Origin"
    if path == "/score":
        assert response.status_code == 500  # run() raises: error replies carry CORS headers too
        assert response.headers["x-ms-run-function-failed"] == "True"


@pytest.mark.parametrize("origin", ["http://evil.example", None])
def test_server_ignores_other_origins_and_none(two_origins: Server, origin: str | None) -> None:
    headers = {"Origin": origin} if origin else {}
    with two_origins.client() as client:
        for path in ("/", "/swagger.json"):
            response = client.get(path, headers=headers)
            assert response.status_code == 200
            assert cors_of(response) == {}


def test_server_preflight(two_origins: Server) -> None:
    with two_origins.client() as client:
        response = client.options(
            "/score",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
    assert response.status_code == 200
    assert response.content == b""
    assert cors_of(response) == {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-headers": "authorization, content-type",
        "access-control-allow-methods": "GET, POST",
    }
    assert response.headers["vary"] == "Origin"
    assert "access-control-max-age" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


def test_server_preflight_for_another_method_or_origin(two_origins: Server) -> None:
    with two_origins.client() as client:
        put = client.options("/score", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"})
        evil = client.options(
            "/score", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
    assert put.status_code == 200
    assert cors_of(put) == {"access-control-allow-origin": ALLOWED}
    assert cors_of(evil) == {}


def test_server_routing_errors_carry_no_cors_headers(two_origins: Server) -> None:
    with two_origins.client() as client:
        missing = client.get("/nothing", headers={"Origin": ALLOWED})
        wrong = client.put("/score", headers={"Origin": ALLOWED})
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert cors_of(missing) == {}
    assert cors_of(wrong) == {}


def test_server_reads_aml_cors_origins(serve: Callable[..., Server]) -> None:
    server = serve("echo.py", env={"AML_CORS_ORIGINS": " * "})
    with server.client() as client:
        response = client.post("/score", headers={"Origin": "http://any.example"}, json={"data": [1]})
    assert response.status_code == 200
    assert cors_of(response) == {"access-control-allow-origin": "http://any.example"}


def test_server_without_cors_sends_none(serve: Callable[..., Server]) -> None:
    server = serve("echo.py")
    with server.client() as client:
        preflight = client.options("/score", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"})
        response = client.post("/score", headers={"Origin": ALLOWED}, json={"data": [1]})
    assert cors_of(preflight) == {}
    assert cors_of(response) == {}
    assert "vary" not in response.headers


def test_raw_script_preflight_allows_its_methods(serve: Callable[..., Server]) -> None:
    server = serve("typed_rawhttp.py", "--cors-origins", ALLOWED)
    with server.client() as client:
        response = client.options("/score", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"})
    assert response.status_code == 200
    assert response.json() == {"method": "OPTIONS"}  # OPTIONS reaches a @rawhttp run()
    assert cors_of(response) == {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-methods": "DELETE, GET, HEAD, OPTIONS, POST, PUT",
    }


def test_an_invalid_regex_stops_the_server_with_the_entry_named() -> None:
    server = start_server([str(SCRIPTS / "echo.py"), "--cors-origins", "http://ok.example, https://(broken.example"])
    try:
        assert server.wait_exit(60) == 2
    finally:
        kill(server)
    assert "'https://(broken.example'" in server.log
    assert "not a valid regular expression" in server.log
    assert "AML_CORS_ORIGINS" in server.log


# --- A real browser: a cross-origin fetch that needs a preflight ------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


FETCH = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-Trace": "1"}, body: '{"data": [7]}'})
  .then((response) => response.json().then((body) => done({status: response.status, body: body})))
  .catch((error) => done({error: String(error)}));
"""


def test_browser_cross_origin_call(browser: WebDriver) -> None:
    # localhost and 127.0.0.1 are different origins on the same server; only http://localhost:<port> is allowed.
    with served("echo.py", "--cors-origins", r"http://localhost:\d+") as server:
        port = urllib.parse.urlsplit(server.url).port
        browser.get(f"http://localhost:{port}/")
        allowed = browser.execute_async_script(FETCH, f"http://127.0.0.1:{port}/score")
        browser.get(f"http://127.0.0.1:{port}/")
        browser.get_log("browser")
        refused = browser.execute_async_script(FETCH, f"http://localhost:{port}/score")
        console = " ".join(entry["message"] for entry in browser.get_log("browser"))
        deadline = time.monotonic() + 10  # access lines are written in batches
        while server.log.count("OPTIONS /score 200") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = "\n".join(line for line in server.lines if "scorehost.access" in line)
    assert allowed == {"status": 200, "body": {"received": "[7]"}}, log
    assert "error" in refused, refused
    assert "blocked by CORS policy" in console, console  # refused for CORS, not for a network error
    assert log.count("OPTIONS /score 200") == 2, log  # both preflights reached the server
    assert log.count("POST /score") == 1, log  # the refused preflight stopped the real request
