"""CorsPolicy against the reference's observed CORS behaviour (contract §11) and our documented departures."""

from __future__ import annotations

import pytest

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
    assert "AML_CORS_ORIGINS" in str(caught.value)


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
