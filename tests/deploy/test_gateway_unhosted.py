"""A 5xx that did not come from scorehost's host (Serve's ingress, its HAProxy: no `x-ms-run-function-failed`)
becomes the gateway's own JSON 502, 503 or 504, with the headers of the host's answers; the host's own 5xx and
anyone's 4xx pass through as they came."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_gateway import Gateway, one

SAID = b"Internal Server Error from the stand-in"


class Ingress:
    """Answers `?status=N` with N and a plain-text body, as Serve's ingress does; `&hosted=1` adds the host's
    marker header, as scorehost's host does."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the gateway's second request reuses the connection

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                self.send_response(int(query["status"][0]))
                self.send_header("content-type", "text/plain")
                if query.get("hosted"):
                    self.send_header("X-Ms-Run-Function-Failed", "True")
                self.send_header("content-length", str(len(SAID)))
                self.end_headers()
                self.wfile.write(SAID)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def through(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, httpx.Client]]:
    """A gateway whose endpoint `mnist` is the stand-in ingress, and a client of it."""
    gateway = Gateway(Path(tmp_path_factory.mktemp("gateway-unhosted")))
    ingress = Ingress()
    gateway.publish({"mnist": one(ingress.url)})
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            yield gateway, client
    finally:
        gateway.stop()
        ingress.close()


@pytest.mark.parametrize(("upstream", "status"), [(500, 502), (502, 502), (503, 503), (504, 504)])
def test_a_5xx_not_from_the_host_becomes_the_gateways_own(
    through: tuple[Gateway, httpx.Client], upstream: int, status: int
) -> None:
    gateway, client = through
    for attempt in range(2):  # on a new connection, then on the kept one (the gateway's two ways of forwarding)
        request_id = f"unhosted-{upstream}-{attempt}"
        reply = client.post(f"/endpoints/mnist/score?status={upstream}", json={}, headers={"x-request-id": request_id})
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/json"
        assert "retry" in reply.json()["error"] or status == 504
        assert SAID.decode() not in reply.text  # what it said is in the gateway's log only
        assert reply.headers["x-request-id"] == reply.headers["x-ms-request-id"] == request_id
        assert reply.headers["x-ms-run-function-failed"] == "False"  # not the script's failure
        assert reply.headers["x-ms-server-version"].startswith("scorehost/")
        assert "azureml-model-deployment" not in reply.headers
        assert (reply.headers.get("retry-after") == "1") == (status == 503)
        gateway.wait_for_log(rf"\[{request_id}\] .* answered {upstream}, not from its host: .*from the stand-in")


def test_the_hosts_5xx_and_a_plain_4xx_pass_through(through: tuple[Gateway, httpx.Client]) -> None:
    _, client = through
    failed = client.post("/endpoints/mnist/score?status=500&hosted=1", json={})
    assert failed.status_code == 500  # a script's failure, as its host answered it
    assert failed.content == SAID
    assert failed.headers["x-ms-run-function-failed"] == "True"
    assert failed.headers["azureml-model-deployment"] == "blue"
    late = client.post("/endpoints/mnist/score?status=408", json={})  # Serve's own deadline: documented as 408
    assert late.status_code == 408
    assert late.content == SAID


def test_an_unreachable_instance_is_answered_with_the_hosts_headers(through: tuple[Gateway, httpx.Client]) -> None:
    gateway, client = through
    closed = Ingress()
    closed.close()
    gateway.publish({"mnist": one(closed.url)})
    reply = client.post("/endpoints/mnist/score", json={})
    assert reply.status_code == 502
    assert "cannot be reached" in reply.json()["error"]
    assert reply.headers["x-ms-run-function-failed"] == "False"
    assert reply.headers["x-ms-request-id"] == reply.headers["x-request-id"]
