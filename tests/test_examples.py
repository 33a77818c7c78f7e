"""The shipped example, served as README.md's first command serves it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import Server

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits"


def test_digits_example_trains_on_first_use_and_classifies_the_sample(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(EXAMPLE / "score.py", "--model-dir", str(tmp_path))
    assert (tmp_path / "model.joblib").is_file()  # built by init(): no model file is committed
    sample = json.loads((EXAMPLE / "sample-request.json").read_text())
    response = httpx.post(f"{server.url}/score", json=sample, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["digits"] == [0, 1]
    assert all(0.5 < confidence <= 1 for confidence in answer["confidence"])
    assert "digits model: test accuracy" in server.log  # the training print, turned into a log line
