"""EnvironHeaders: a WSGI environ's headers as the reference's `request_headers` shows them."""

from __future__ import annotations

from typing import Any

from scorehost.http.wsgi_request import EnvironHeaders


def title_case_headers(environ: dict[str, Any]) -> dict[str, str]:
    return dict(EnvironHeaders(environ))


# --- request_headers ------------------------------------------------------------------------------------


def test_title_case_headers_as_werkzeug_shows_them() -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "11",
        "HTTP_X_CUSTOM": "1",
        "HTTP_X_REQUEST_ID": "abc",
        "HTTP_X_MS_CLIENT_REQUEST_ID": "c1",
        "HTTP_AUTHORIZATION": "Bearer t",
        "HTTP_HOST": "localhost:5001",
        "wsgi.input": object(),
    }
    assert title_case_headers(environ) == {
        "Content-Type": "application/json",
        "Content-Length": "11",
        "X-Custom": "1",
        "X-Request-Id": "abc",
        "X-Ms-Client-Request-Id": "c1",
        "Authorization": "Bearer t",
        "Host": "localhost:5001",
    }


def test_repeated_headers_arrive_joined_by_the_server() -> None:
    """The WSGI server joins a repeated header into one HTTP_ value; it passes through as sent."""
    environ = {"HTTP_ACCEPT": "text/html, application/json"}
    assert title_case_headers(environ) == {"Accept": "text/html, application/json"}


def test_header_values_are_latin1_text() -> None:
    """WSGI servers decode header bytes as latin-1 (PEP 3333): the str passes through unchanged."""
    wire = "Zoë".encode("latin-1")
    assert title_case_headers({"HTTP_X_NAME": wire.decode("latin-1")}) == {"X-Name": "Zoë"}
    # UTF-8 on the wire arrives as one latin-1 character per byte, and is not decoded again.
    assert title_case_headers({"HTTP_X_NAME": "Zoë".encode().decode("latin-1")}) == {"X-Name": "ZoÃ«"}


def test_no_headers() -> None:
    assert title_case_headers({}) == {}
    assert title_case_headers({"REQUEST_METHOD": "GET", "PATH_INFO": "/score", "QUERY_STRING": ""}) == {}


def test_content_type_and_length_come_from_their_cgi_keys() -> None:
    assert title_case_headers({"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "3"}) == {
        "Content-Type": "text/plain",
        "Content-Length": "3",
    }
    # Empty values (a server's placeholders for a request without a body) are left out.
    assert title_case_headers({"CONTENT_TYPE": "", "CONTENT_LENGTH": ""}) == {}


def test_lookups_and_length() -> None:
    headers = EnvironHeaders({"HTTP_X_CUSTOM": "1", "CONTENT_TYPE": "text/plain"})
    assert headers["X-Custom"] == "1"
    assert headers.get("x-custom") is None  # case-sensitive, as the reference's plain dict
    assert len(headers) == 2
