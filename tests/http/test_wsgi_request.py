"""EnvironHeaders: a WSGI environ's headers as the reference's `request_headers` shows them."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from scorehost.errors import IncompleteBody, PayloadTooLarge, RequestTimeout
from scorehost.http.body_watch import PROTOCOL_KEY, BodyWatch
from scorehost.http.wsgi_request import EnvironHeaders, score_request


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


# --- bodies that are not whole, and the body watch -------------------------------------------------------


class ShortInput:
    """granian's reader on a connection that ended early: what came, and no error."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = self.data, b""
        return data


def granian_environ(body: bytes, **extra: str) -> dict[str, Any]:
    """An environ as the granian front hands it over (its protocol object included)."""
    return {"REQUEST_METHOD": "POST", "wsgi.input": ShortInput(body), PROTOCOL_KEY: object(), **extra}


def test_a_body_shorter_than_its_content_length_is_refused() -> None:
    with pytest.raises(IncompleteBody, match="The body ended after 3 of the 10 bytes its Content-Length announced"):
        score_request(granian_environ(b"abc", CONTENT_LENGTH="10"), 100, raw=False)
    assert score_request(granian_environ(b"abc", CONTENT_LENGTH="3"), 100, raw=False).body == b"abc"


def test_a_chunked_body_that_reads_empty_is_refused() -> None:
    """granian reads a chunked body whose framing failed as nothing at all."""
    with pytest.raises(IncompleteBody, match="The chunked body ended before its last chunk"):
        score_request(granian_environ(b"", HTTP_TRANSFER_ENCODING="chunked"), 100, raw=False)
    assert score_request(granian_environ(b"[1]", HTTP_TRANSFER_ENCODING="chunked"), 100, raw=False).body == b"[1]"
    with pytest.raises(PayloadTooLarge):
        score_request(granian_environ(b"x" * 101, HTTP_TRANSFER_ENCODING="chunked"), 100, raw=False)


def test_a_request_without_length_or_chunks_has_no_body_to_read() -> None:
    environ = granian_environ(b"")
    environ["wsgi.input"] = None  # never read
    assert score_request(environ, 100, raw=False).body == b""


class StalledInput:
    """A read that waits until released, as granian's does while a client sends nothing."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def read(self, size: int = -1) -> bytes:
        assert self.release.wait(10)
        return b""


class Protocol:
    def __init__(self, stalled: StalledInput) -> None:
        self.stalled = stalled
        self.answers: list[tuple[int, list[tuple[str, str]], bytes]] = []

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answers.append((status, headers, body))
        self.stalled.release.set()  # as closing the connection ends the read


def test_a_read_past_the_body_timeout_is_answered_408_at_once_and_then_refused() -> None:
    stalled = StalledInput()
    protocol = Protocol(stalled)
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "5", "wsgi.input": stalled, PROTOCOL_KEY: protocol}
    ids = [("x-ms-request-id", "r1")]
    with pytest.raises(RequestTimeout, match=r"did not arrive within 0.1 s of its headers; .* raise --body-timeout"):
        score_request(environ, 100, raw=False, watch=BodyWatch(0.1), started=time.monotonic(), answer_headers=ids)
    [(status, headers, body)] = protocol.answers
    assert status == 408
    assert ("connection", "close") in headers
    assert ("x-ms-request-id", "r1") in headers
    assert json.loads(body)["message"].startswith("The request's body did not arrive within 0.1 s")


def test_a_read_within_the_body_timeout_is_left_alone() -> None:
    watch = BodyWatch(5)
    environ = granian_environ(b"abc", CONTENT_LENGTH="3")
    for _ in range(3):  # the same thread, one request after another
        assert score_request(environ | {"wsgi.input": ShortInput(b"abc")}, 100, raw=False, watch=watch).body == b"abc"
