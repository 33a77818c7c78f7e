"""AMLRequest over real WSGI environs: the Flask request API that @rawhttp scripts use."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from scorehost.compat import AMLRequest, AMLResponse

# Every byte value, and the sequences a multipart parser must not mistake for boundaries or line ends.
PAYLOAD = bytes(range(256)) * 8 + b"\r\n--boundary\r\n\r\n" + b"\x00" * 100


_opened: list[AMLRequest] = []


def request(**kwargs: Any) -> AMLRequest:
    builder = EnvironBuilder(**kwargs)
    try:
        req = AMLRequest(builder.get_environ())
    finally:
        builder.close()
    _opened.append(req)
    return req


@pytest.fixture(autouse=True)
def _close_requests() -> Iterator[None]:
    # Closing releases uploaded files' temporary storage, as the server does after run().
    yield
    while _opened:
        _opened.pop().close()


def test_it_is_a_werkzeug_request_registered_in_its_environ() -> None:
    req = request(path="/score")
    assert isinstance(req, Request)
    assert req.environ["werkzeug.request"] is req


def test_no_arguments_gives_an_empty_get() -> None:
    req = AMLRequest()
    assert (req.method, req.path, req.get_data(), req.args.to_dict()) == ("GET", "/", b"", {})


def test_multipart_file_upload_is_byte_exact_with_form_fields_beside_it() -> None:
    req = request(
        path="/score",
        method="POST",
        data={"image": (io.BytesIO(PAYLOAD), "photo.bin", "application/octet-stream"), "note": ["hi", "there"]},
    )
    upload = req.files["image"]
    assert upload.read() == PAYLOAD
    assert (upload.filename, upload.mimetype) == ("photo.bin", "application/octet-stream")
    assert req.form.getlist("note") == ["hi", "there"]
    assert req.mimetype == "multipart/form-data"


def test_urlencoded_form() -> None:
    req = request(path="/score", method="POST", data={"a": "1", "b": "x y"})
    assert req.form.to_dict() == {"a": "1", "b": "x y"}
    assert req.content_type == "application/x-www-form-urlencoded"


def test_raw_body_bytes_are_exact() -> None:
    req = request(path="/score", method="POST", data=PAYLOAD, content_type="application/octet-stream")
    assert req.get_data() == PAYLOAD
    assert req.data == PAYLOAD
    assert req.headers["content-length"] == str(len(PAYLOAD))


def test_args_full_path_and_url() -> None:
    req = request(path="/score", query_string="a=1&a=2&b=x%20y", base_url="http://example.test:5001")
    assert req.args.getlist("a") == ["1", "2"]
    assert req.args["b"] == "x y"
    assert req.full_path == "/score?a=1&a=2&b=x%20y"
    assert req.url == "http://example.test:5001/score?a=1&a=2&b=x%20y"


def test_full_path_ends_in_a_question_mark_without_a_query_as_in_flask() -> None:
    assert request(path="/score").full_path == "/score?"


def test_headers_are_case_insensitive() -> None:
    req = request(path="/score", headers={"X-Custom": "v", "Authorization": "Bearer k"})
    assert req.headers["x-custom"] == "v"
    assert req.headers.get("AUTHORIZATION") == "Bearer k"


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json"])
def test_json_and_get_json_parse_json_content_types(content_type: str) -> None:
    body = {"data": [[1, 2], [3, 4]], "text": "café"}
    req = request(path="/score", method="POST", data=json.dumps(body), content_type=content_type)
    assert req.json == body
    assert req.get_json() == body
    assert req.is_json


def test_get_json_on_another_content_type_raises_415() -> None:
    req = request(path="/score", method="POST", data='{"a": 1}', content_type="text/plain")
    with pytest.raises(UnsupportedMediaType) as raised:
        req.get_json()
    assert raised.value.code == 415
    with pytest.raises(UnsupportedMediaType):
        _ = req.json
    assert req.get_json(silent=True) is None
    assert req.get_json(force=True) == {"a": 1}


def test_invalid_json_raises_flasks_bare_400_with_the_detail_as_its_cause() -> None:
    req = request(path="/score", method="POST", data="{bad", content_type="application/json")
    with pytest.raises(BadRequest) as raised:
        req.get_json()
    assert raised.value.code == 400
    assert raised.value.description == BadRequest.description
    assert "Failed to decode JSON object" in str(raised.value.__cause__)
    assert req.get_json(silent=True) is None


def test_flasks_routing_attributes_exist() -> None:
    req = request(path="/score")
    assert (req.url_rule, req.view_args, req.routing_exception) == (None, {}, None)
    assert (req.endpoint, req.blueprint, req.blueprints) == (None, None, [])


def test_flasks_form_limits_are_werkzeugs_defaults() -> None:
    req = request(path="/score")
    assert (req.max_content_length, req.max_form_memory_size, req.max_form_parts) == (None, 500_000, 1000)


def _upload_app(environ: dict[str, Any], start_response: Any) -> Any:
    with AMLRequest(environ) as req:
        upload = req.files["image"].read()
        body = {"size": len(upload), "same": upload == PAYLOAD, "query": req.args.to_dict(), "path": req.full_path}
        return AMLResponse(body, 200, {"X-Seen": "file, form"}, json_str=True)(environ, start_response)


@pytest.fixture
def upload_server() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, _upload_app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_real_http_upload_through_a_wsgi_server(upload_server: str) -> None:
    answer = httpx.post(
        f"{upload_server}/score?k=v", files={"image": ("p.bin", PAYLOAD, "application/octet-stream")}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.json() == {"size": len(PAYLOAD), "same": True, "query": {"k": "v"}, "path": "/score?k=v"}
    assert answer.headers.get_list("x-seen") == ["file", "form"]
    assert answer.headers["x-ms-run-function-failed"] == "False"
