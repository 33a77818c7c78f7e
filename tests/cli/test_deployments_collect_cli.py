"""`deployments create/update --collect` and `deployments data`, as a user runs them: real processes and files."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from test_endpoints_cli import WHOAMI, control_plane, scorehost

pytestmark = pytest.mark.timeout(180)
__all__ = ["control_plane"]  # the fixture, imported to be used here


def collected(endpoint: str, name: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = [json.loads(line) for line in scorehost("deployments", "data", endpoint, name).stdout.splitlines()]
        if len(rows) >= count:
            break
        time.sleep(0.3)
    return rows


def test_collecting_from_flags_then_stopping(control_plane: int) -> None:
    scorehost("endpoints", "create", "shop", "--auth", "none")
    script = str(WHOAMI / "score.py")
    flags = ["--collect", "request", "--collect", "response", "--collect-header", "x-client-id"]
    flags += ["--collect-max-age", "7d"]
    scorehost("deployments", "create", "shop", "blue", "--script", script, *flags)
    url = f"http://127.0.0.1:{control_plane}/endpoints/shop/score"
    for n in range(3):
        assert httpx.post(url, json={"data": n}, headers={"x-client-id": "c1"}, timeout=30).status_code == 200
    rows = collected("shop", "blue", 6)
    assert (
        sorted(str(row["type"]) for row in rows)
        == ["azureml.inference.request"] * 3 + ["azureml.inference.response"] * 3
    )
    requests = [row for row in rows if row["type"] == "azureml.inference.request"]
    assert all(row["headers"] == {"x-client-id": "c1"} for row in requests)
    shown = json.loads(scorehost("deployments", "show", "shop", "blue", "--json").stdout)
    assert shown["serve_options"]["collect"] == "request,response"
    assert shown["serve_options"]["collect_max_age"] == "7d"

    refused = scorehost("deployments", "update", "shop", "blue", "--no-collect", "--collect", "request", code=2)
    assert "--no-collect cannot be combined" in refused.stderr
    scorehost("deployments", "update", "shop", "blue", "--no-collect", "--collect-max-size", "1GiB")
    shown = json.loads(scorehost("deployments", "show", "shop", "blue", "--json").stdout)
    assert shown["serve_options"] == {"collect_max_size": "1GiB"}  # what --no-collect leaves: nothing collects
    for n in range(2):
        assert httpx.post(url, json={"data": n}, timeout=30).status_code == 200
    # The writer puts rows on disk within a fifth of a second; one read after waiting ten times that (not a 10 s
    # poll for a row that must never come: each read is a CLI process).
    time.sleep(2)
    listed = scorehost("deployments", "data", "shop", "blue").stdout.splitlines()
    assert len(listed) == 6  # what was collected stays; nothing new comes
