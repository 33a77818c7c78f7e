"""Schemathesis, driven by each scoring server's own GET /swagger.json (2.0 and 3.1), against real servers.

Typed scripts document their parameters, so the cases fit them or break them on purpose; an undecorated and a
@rawhttp script document /score as it takes anything. The scripts never raise for what they accept, so no answer
may be a 5xx; each carries the headers every answer does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from conftest import Server, served

from fuzz._checks import REQUIRED_HEADERS, assert_alive
from fuzz._schemathesis import fuzz_operations
from fuzz._tally import Recorder

SCRIPTS = ["typed_echo.py", "typed_sklearn_numpy.py", "echo.py", "raw_echo_bytes.py"]


@pytest.fixture(scope="module", params=SCRIPTS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with served(request.param) as started:
        yield started


def _check(server: Server) -> Any:
    def check(case: Any, answer: requests.Response) -> None:
        context = f"{case.as_curl_command()}\n-> {answer.status_code} {answer.text[:400]}"
        assert answer.status_code < 500, f"server error: {context}\nserver log:\n" + "\n".join(server.lines[-30:])
        missing = [name for name in REQUIRED_HEADERS if name not in answer.headers]
        assert not missing, f"headers {missing} missing: {context}"

    return check


@pytest.mark.parametrize("version", ["2", "3.1"])
def test_every_documented_operation(server: Server, recorder: Recorder, version: str) -> None:
    document = httpx.get(f"{server.url}/swagger.json", params={"version": version}, timeout=30).json()
    with requests.Session() as session:
        fuzz_operations(document, server.url, recorder, _check(server), max_examples=40, session=session)
    assert_alive(server)
