"""@rawhttp entry scripts served by a real `scorehost serve` process, over real HTTP: an image classifier, binary
bodies byte for byte, streamed replies, the AMLResponse shapes, and CORS from the server and from the script."""

from __future__ import annotations

import hashlib
import io
import random
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SCRIPTS, kill, served, start_server
from PIL import Image

EXEC_MS = re.compile(r"^\d+\.\d{3}$")
MIB = 1024 * 1024


def png(color: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


# --- raw_image_classifier.py: the documentation's binary-data pattern ----------------------------


@pytest.fixture(scope="module")
def classifier() -> Iterator[httpx.Client]:
    with served("raw_image_classifier.py") as server, server.client() as client:
        yield client


def test_classifier_get_answers_the_usage_text(classifier: httpx.Client) -> None:
    response = classifier.get("/score")
    assert response.status_code == 200
    assert response.text.startswith("POST an image: the raw bytes")
    assert response.headers["content-type"] == "text/html; charset=utf-8"  # AMLResponse's default, as Flask's


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png"])
@pytest.mark.parametrize(("color", "label"), [((250, 250, 250), "bright"), ((5, 5, 5), "dark")])
def test_classifier_predicts_from_png_bytes(
    classifier: httpx.Client, content_type: str, color: tuple[int, int, int], label: str
) -> None:
    response = classifier.post("/score", content=png(color), headers={"content-type": content_type})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    prediction = response.json()
    assert prediction["label"] == label
    assert (prediction["width"], prediction["height"], prediction["mode"], prediction["format"]) == (8, 6, "RGB", "PNG")


def test_classifier_multipart_upload_gives_the_same_prediction(classifier: httpx.Client) -> None:
    image = png((128, 128, 128), (5, 4))
    raw = classifier.post("/score", content=image, headers={"content-type": "application/octet-stream"})
    # What the documentation's client does: requests.post(uri, files={"image": open(path, "rb").read()}).
    uploaded = classifier.post("/score", files={"image": ("photo.png", image, "image/png")})
    assert uploaded.status_code == raw.status_code == 200
    assert uploaded.json() == raw.json()
    assert uploaded.json()["label"] == "medium"


def test_classifier_answers_400_for_bytes_that_are_not_an_image(classifier: httpx.Client) -> None:
    response = classifier.post(
        "/score", content=b"\x89PNG but not really", headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("not an image: ")
    assert response.headers["x-ms-run-function-failed"] == "False"  # the script answered; run() did not fail


def test_classifier_answers_415_for_another_content_type(classifier: httpx.Client) -> None:
    response = classifier.post("/score", content=b"hello", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.text.startswith("No image in this text/plain request.")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_classifier_put_and_delete_reach_run(classifier: httpx.Client, method: str) -> None:
    response = classifier.request(method, "/score")
    # The script's own 405 (text, its Allow lines), not the server's routing 405 (JSON, all raw methods).
    assert response.status_code == 405
    assert response.text.startswith(f"{method} is not supported.")
    assert response.headers.get_list("allow") == ["GET", "POST"]
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])


def test_classifier_head_gets_the_headers_without_a_body(classifier: httpx.Client) -> None:
    response = classifier.head("/score", headers={"x-request-id": "head-1"})
    assert response.content == b""
    # run() answered HEAD as it answers every method but GET and POST.
    assert response.status_code == 405
    assert response.headers.get_list("allow") == ["GET", "POST"]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert response.headers["x-request-id"] == "head-1"


def test_classifier_replies_carry_the_run_headers(classifier: httpx.Client) -> None:
    response = classifier.post(
        "/score",
        content=png((1, 2, 3)),
        headers={"content-type": "image/png", "x-request-id": "image-1", "x-ms-client-request-id": "client-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])
    assert response.headers["x-request-id"] == "image-1"
    assert response.headers["x-ms-request-id"] == "client-1"
    assert response.headers["x-ms-client-request-id"] == "client-1"
    fresh = classifier.get("/score")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", fresh.headers["x-request-id"])


# --- raw_echo_bytes.py: bodies arrive and leave byte for byte ------------------------------------

LIMIT = 6 * MIB
SIZES = [0, 1, 64 * 1024, 5 * MIB, LIMIT]


@pytest.fixture(scope="module")
def echo_bytes() -> Iterator[httpx.Client]:
    with served("raw_echo_bytes.py", "--max-body-size", "6MiB") as server, server.client() as client:
        yield client


def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def summary(
    body: bytes, method: str = "POST", content_type: str | None = "application/octet-stream"
) -> dict[str, object]:
    return {
        "method": method,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": content_type,
    }


def in_chunks(body: bytes, size: int = 65536) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("size", SIZES)
def test_body_reaches_run_byte_exact(echo_bytes: httpx.Client, size: int) -> None:
    body = random_bytes(size)
    response = echo_bytes.post("/score", content=body, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.json() == summary(body)


@pytest.mark.parametrize("size", SIZES)
def test_body_comes_back_byte_exact(echo_bytes: httpx.Client, size: int) -> None:
    body = random_bytes(size)
    response = echo_bytes.post(
        "/score", params={"echo": "1"}, content=body, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(size)
    assert response.content == body


@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8", "multipart/form-data"])
def test_bytes_that_are_not_utf8_are_not_judged_by_the_server(echo_bytes: httpx.Client, content_type: str) -> None:
    # A plain run() would get a 400 for these; a raw run() gets them untouched, whatever the content type says.
    body = b"\xff\xfe\x00binary\x80"
    response = echo_bytes.put("/score", content=body, headers={"content-type": content_type})
    assert response.status_code == 200
    assert response.json() == summary(body, "PUT", content_type)


def test_one_byte_over_the_limit_is_413_before_run(echo_bytes: httpx.Client) -> None:
    response = echo_bytes.post(
        "/score",
        content=random_bytes(LIMIT + 1),
        headers={"content-type": "application/octet-stream", "x-request-id": "too-big"},
    )
    assert response.status_code == 413
    assert response.json()["message"].startswith(f"The body is larger than the {LIMIT}-byte limit")
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert response.headers["x-request-id"] == "too-big"


@pytest.mark.parametrize("size", [1, 64 * 1024 + 3, LIMIT])
def test_chunked_upload_reaches_run_byte_exact(echo_bytes: httpx.Client, size: int) -> None:
    body = random_bytes(size)
    response = echo_bytes.post("/score", content=in_chunks(body), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.json() == summary(body)


def test_chunked_upload_one_byte_over_the_limit_is_413(echo_bytes: httpx.Client) -> None:
    body = random_bytes(LIMIT + 1)
    response = echo_bytes.post("/score", content=in_chunks(body), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 413
    # The server is fine afterwards.
    assert echo_bytes.post("/score", content=b"ok").json()["length"] == 2


# --- raw_streaming.py: an iterator body streams -------------------------------------------------


@pytest.fixture(scope="module")
def streaming() -> Iterator[httpx.Client]:
    with served("raw_streaming.py") as server, server.client() as client:
        yield client


@pytest.mark.parametrize("kind", ["aml", "werkzeug"])
def test_first_chunk_arrives_before_the_last_is_produced(streaming: httpx.Client, tmp_path: Path, kind: str) -> None:
    # The generator yields "first", then waits for the gate file, which the test creates only once it has read
    # "first": a server that buffered the body would deliver nothing until the generator gave up.
    gate = tmp_path / "gate"
    params = {"gate": str(gate), "chunks": "3", "kind": kind}
    with streaming.stream("POST", "/score", params=params) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["x-stream"] == "yes"
        assert response.headers["x-ms-run-function-failed"] == "False"
        assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])
        chunks = response.iter_raw()
        first = next(chunks)
        gate.touch()
        rest = b"".join(chunks)
    assert first == b"first\n"
    assert rest == b"chunk 1\nchunk 2\nchunk 3\nlast\n"


def test_a_long_stream_arrives_whole(streaming: httpx.Client) -> None:
    response = streaming.post("/score", params={"chunks": "40"})
    assert response.status_code == 200
    assert response.text == "first\n" + "".join(f"chunk {index}\n" for index in range(1, 41)) + "last\n"


def test_head_of_a_streamed_reply_has_no_body(streaming: httpx.Client) -> None:
    response = streaming.head("/score")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-stream"] == "yes"
    assert streaming.post("/score", params={"chunks": "1"}).text == "first\nchunk 1\nlast\n"  # still serving


# --- What run() returns: AMLResponse and Werkzeug Response shapes --------------------------------

RESPONSES_SCRIPT = """
    from azureml.contrib.services.aml_request import rawhttp
    from azureml.contrib.services.aml_response import AMLResponse
    from werkzeug.wrappers import Response


    def init():
        pass


    @rawhttp
    def run(request):
        shape = request.args["shape"]
        if shape == "created":
            headers = {"Location": "/items/7", "X-Multi": "a, b,c"}
            return AMLResponse({"id": 7, "name": "caf\\u00e9"}, 201, headers, json_str=True)
        if shape == "none":
            return AMLResponse(None, 202, json_str=False)
        if shape == "teapot":
            return AMLResponse("short and stout", 418, {"Content-Type": "text/plain"})
        if shape == "failed-flag":
            return AMLResponse("bad input", 400, run_function_failed=True)
        if shape == "aml-500":
            return AMLResponse("boom", 500)
        if shape == "werkzeug-503":
            return Response("try again later", status=503, headers={"Retry-After": "2"})
        return {"plain": shape}
"""


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    script = tmp_path_factory.mktemp("responses") / "score.py"
    script.write_text(textwrap.dedent(RESPONSES_SCRIPT).lstrip(), encoding="utf-8")
    with served(script) as server, server.client() as client:
        yield client


def test_aml_response_status_json_and_comma_split_headers(responses: httpx.Client) -> None:
    response = responses.post("/score", params={"shape": "created"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": 7, "name": "caf\u00e9"}
    assert response.content == b'{"id": 7, "name": "caf\\u00e9"}'  # json.dumps, as the reference writes it
    assert response.headers["location"] == "/items/7"
    assert response.headers.get_list("x-multi") == ["a", "b", "c"]  # one line per comma-separated value
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])


def test_aml_response_none_is_an_empty_object(responses: httpx.Client) -> None:
    response = responses.get("/score", params={"shape": "none"})
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert response.content == b"{}"


def test_aml_response_custom_status_and_content_type(responses: httpx.Client) -> None:
    response = responses.post("/score", params={"shape": "teapot"})
    assert response.status_code == 418
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "short and stout"


def test_aml_response_may_flag_a_failure_itself(responses: httpx.Client) -> None:
    response = responses.post("/score", params={"shape": "failed-flag"})
    assert response.status_code == 400
    assert response.headers.get_list("x-ms-run-function-failed") == ["True"]


def test_an_aml_response_with_status_500_is_a_failed_run_whatever_it_says(responses: httpx.Client) -> None:
    response = responses.post("/score", params={"shape": "aml-500"})
    assert response.status_code == 500
    assert response.text == "boom"
    assert response.headers.get_list("x-ms-run-function-failed") == ["True"]  # AMLResponse itself set False


def test_a_response_with_status_500_or_more_is_a_failed_run(responses: httpx.Client) -> None:
    response = responses.post("/score", params={"shape": "werkzeug-503"})
    assert response.status_code == 503
    assert response.text == "try again later"
    assert response.headers["retry-after"] == "2"
    assert response.headers.get_list("x-ms-run-function-failed") == ["True"]
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])


def test_a_raw_run_may_still_return_plain_data(responses: httpx.Client) -> None:
    response = responses.post("/score", params={"shape": "dict"})
    assert response.status_code == 200
    assert response.json() == {"plain": "dict"}
    assert response.headers["x-ms-run-function-failed"] == "False"


# --- CORS end to end -----------------------------------------------------------------------------

TWO = "http://allowed.example, https://other.example"
ALLOWED = "https://other.example"
CORS_NAMES = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers")


def cors_of(response: httpx.Response) -> dict[str, list[str]]:
    return {name: response.headers.get_list(name) for name in CORS_NAMES if name in response.headers}


@pytest.fixture(scope="module")
def cors_echo() -> Iterator[httpx.Client]:
    with served("echo.py", "--cors-origins", TWO) as server, server.client() as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [("POST", "/score"), ("GET", "/score"), ("GET", "/")])
def test_cors_matching_origin_is_allowed(cors_echo: httpx.Client, method: str, path: str) -> None:
    response = cors_echo.request(method, path, headers={"Origin": ALLOWED}, json={"data": [1]})
    assert response.status_code == 200
    assert cors_of(response) == {"access-control-allow-origin": [ALLOWED]}
    assert response.headers["vary"] == "Origin"


def test_cors_other_origin_gets_no_cors_headers(cors_echo: httpx.Client) -> None:
    for path in ("/", "/score"):
        response = cors_echo.get(path, headers={"Origin": "http://evil.example"})
        assert response.status_code == 200
        assert cors_of(response) == {}


def test_cors_preflight(cors_echo: httpx.Client) -> None:
    response = cors_echo.options(
        "/score",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, X-Trace",
        },
    )
    assert response.status_code == 200
    assert response.content == b""
    assert cors_of(response) == {
        "access-control-allow-origin": [ALLOWED],
        "access-control-allow-methods": ["GET, POST"],
        "access-control-allow-headers": ["Content-Type, X-Trace"],
    }


def test_cors_on_a_500_reply() -> None:
    with served("run_raises.py", "--cors-origins", TWO) as server, server.client() as client:
        response = client.post("/score", headers={"Origin": "HTTP://ALLOWED.EXAMPLE"}, json={"data": 1})
    assert response.status_code == 500
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert cors_of(response) == {"access-control-allow-origin": ["HTTP://ALLOWED.EXAMPLE"]}


@pytest.fixture(scope="module")
def cors_script() -> Iterator[httpx.Client]:
    with served("raw_cors_response.py", "--cors-origins", TWO) as server, server.client() as client:
        yield client


SCRIPT_CORS = {
    "access-control-allow-origin": ["*"],
    "access-control-allow-methods": ["GET", "POST", "OPTIONS"],
    "access-control-allow-headers": ["Content-Type", "Authorization"],
}


def test_cors_script_answers_its_own_preflight_and_the_server_adds_vary(cors_script: httpx.Client) -> None:
    response = cors_script.options("/score", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200
    assert response.content == b""
    # The script's lines reach the client unchanged (the server adds none of the same names over them) ...
    assert cors_of(response) == SCRIPT_CORS
    assert response.headers.get_list("allow") == ["GET", "POST", "OPTIONS"]
    # ... and the server's own header reaches it too.
    assert response.headers["vary"] == "Origin"


def test_cors_script_reply_carries_both(cors_script: httpx.Client) -> None:
    response = cors_script.post("/score", headers={"Origin": ALLOWED}, json={"name": "x"})
    assert response.status_code == 201
    assert response.json() == {"created": {"name": "x"}}
    assert cors_of(response) == SCRIPT_CORS
    assert response.headers["vary"] == "Origin"
    query = cors_script.get("/score", params={"q": "1"}, headers={"Origin": "http://evil.example"})
    assert query.json() == {"query": {"q": "1"}}
    assert cors_of(query) == SCRIPT_CORS  # the script's headers do not depend on the server's policy


def test_cors_origins_from_the_environment() -> None:
    with served("echo.py", env={"AML_CORS_ORIGINS": TWO}) as server, server.client() as client:
        allowed = client.post("/score", headers={"Origin": "http://allowed.example"}, json={"data": 1})
        other = client.post("/score", headers={"Origin": "http://evil.example"}, json={"data": 1})
    assert cors_of(allowed) == {"access-control-allow-origin": ["http://allowed.example"]}
    assert cors_of(other) == {}


def test_cors_invalid_regex_stops_the_server_with_code_2() -> None:
    server = start_server([str(SCRIPTS / "echo.py"), "--cors-origins", "http://ok.example, https://[z-a].example"])
    try:
        assert server.wait_exit(60) == 2
    finally:
        kill(server)
    assert "--cors-origins" in server.log
    assert "'https://[z-a].example'" in server.log
    assert "listening on" not in server.log
