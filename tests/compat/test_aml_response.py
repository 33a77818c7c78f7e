"""AMLResponse, one rule of contract §9 at a time: status, header lines (after comma splitting) and body."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from scorehost.compat import AMLResponse


def sent(response: AMLResponse) -> tuple[str, list[tuple[str, str]], bytes]:
    """What a WSGI server would put on the wire: status line, header lines in order, body."""
    app_iter, status, headers = run_wsgi_app(response, EnvironBuilder().get_environ())
    body = b"".join(app_iter)
    return status, list(headers.items()), body


def test_a_text_message_is_the_body_as_html_with_the_failure_header_false() -> None:
    assert sent(AMLResponse("hi", 200)) == (
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "2"), ("x-ms-run-function-failed", "False")],
        b"hi",
    )


def test_it_is_a_werkzeug_response_that_takes_headers_after_construction() -> None:
    response = AMLResponse("x", 200)
    response.headers["Access-Control-Allow-Origin"] = "*"
    assert isinstance(response, Response)
    assert response.mimetype == "text/html"
    assert ("Access-Control-Allow-Origin", "*") in sent(response)[1]


@pytest.mark.parametrize("json_str", [False, True])
def test_none_is_an_empty_json_object_whatever_json_str_says(json_str: bool) -> None:
    status, headers, body = sent(AMLResponse(None, 201, json_str=json_str))
    assert (status, body) == ("201 CREATED", b"{}")
    assert ("Content-Type", "application/json") in headers


def test_every_argument_has_a_default() -> None:
    status, headers, body = sent(AMLResponse())
    assert (status, body) == ("200 OK", b"{}")
    assert ("x-ms-run-function-failed", "False") in headers


def test_json_str_dumps_the_message_with_python_defaults() -> None:
    message = {"a": 1, "b": [1.5, None], "text": "café"}
    status, headers, body = sent(AMLResponse(message, 200, json_str=True))
    assert body == json.dumps(message).encode() == b'{"a": 1, "b": [1.5, null], "text": "caf\\u00e9"}'
    assert headers[0] == ("Content-Type", "application/json")


def test_json_str_quotes_a_string_message() -> None:
    assert sent(AMLResponse("hello", 200, json_str=True))[2] == b'"hello"'


def test_bytes_are_sent_unchanged() -> None:
    payload = bytes(range(256))
    status, headers, body = sent(AMLResponse(payload, 200))
    assert body == payload
    assert ("Content-Length", "256") in headers


def test_header_values_are_split_on_commas_into_repeated_lines() -> None:
    headers = sent(AMLResponse("x", 200, {"X-Multi": "a, b", "Access-Control-Allow-Methods": "GET, POST, OPTIONS"}))[1]
    assert [value for name, value in headers if name == "X-Multi"] == ["a", "b"]
    assert [value for name, value in headers if name == "Access-Control-Allow-Methods"] == ["GET", "POST", "OPTIONS"]


def test_splitting_strips_spaces_keeps_empty_pieces_and_splits_dates_too() -> None:
    response = AMLResponse("x", 200, {"X": " a ,, b ", "Expires": "Tue, 01 Jan 2030 00:00:00 GMT"})
    assert response.headers.getlist("X") == ["a", "", "b"]
    assert response.headers.getlist("Expires") == ["Tue", "01 Jan 2030 00:00:00 GMT"]


def test_header_values_that_are_not_strings_are_written_as_text() -> None:
    response = AMLResponse("x", 200, {"X-Count": 5, "X-List": ["a", "b, c"]})
    assert response.headers.getlist("X-Count") == ["5"]
    assert response.headers.getlist("X-List") == ["a", "b", "c"]


@pytest.mark.parametrize("name", ["Content-Type", "content-type"])
def test_a_content_type_entry_replaces_the_default(name: str) -> None:
    headers = sent(AMLResponse("plain", 200, {name: "text/plain"}))[1]
    assert [value for key, value in headers if key.lower() == "content-type"] == ["text/plain"]


def test_a_content_type_entry_replaces_json_too_and_is_not_split() -> None:
    response = AMLResponse({"a": 1}, 200, {"Content-Type": 'multipart/mixed; boundary="x,y"'}, json_str=True)
    assert response.headers.getlist("Content-Type") == ['multipart/mixed; boundary="x,y"']
    assert response.get_data() == b'{"a": 1}'


def test_run_function_failed_is_rendered_as_true() -> None:
    status, headers, body = sent(AMLResponse(b"boom", 500, run_function_failed=True))
    assert status == "500 INTERNAL SERVER ERROR"
    assert ("x-ms-run-function-failed", "True") in headers


@pytest.mark.parametrize("status", ["202", HTTPStatus.ACCEPTED, 202])
def test_status_may_be_a_number_a_string_or_an_http_status(status: int | str) -> None:
    assert sent(AMLResponse("x", status))[0] == "202 ACCEPTED"


def test_response_headers_none_is_no_headers() -> None:
    assert sent(AMLResponse("x", 200, None))[1][-1] == ("x-ms-run-function-failed", "False")


def test_an_iterator_message_is_streamed_without_a_length() -> None:
    response = AMLResponse(iter([b"chunk1,", "chunk2"]), 200)
    assert response.is_streamed
    status, headers, body = sent(response)
    assert body == b"chunk1,chunk2"
    assert "Content-Length" not in dict(headers)


def test_a_list_message_is_joined() -> None:
    status, headers, body = sent(AMLResponse(["a", "b"], 200))
    assert body == b"ab"
