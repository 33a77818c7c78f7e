"""The shipped example, served as README.md's first command serves it, and refusing a registered model that is
not where it looks (a registered folder) instead of training one of its own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import Server

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits"


def test_digits_example_trains_on_first_use_and_classifies_the_sample(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    copy = tmp_path / "digits"  # a copy: the model it trains goes beside the script, not into the checkout
    copy.mkdir()
    for name in ("score.py", "train.py", "sample-request.json"):
        shutil.copy(EXAMPLE / name, copy / name)
    server = serve(copy / "score.py")  # no AZUREML_MODEL_DIR: README's first command
    assert (copy / "model" / "model.joblib").is_file()  # built by init(): no model file is committed
    sample = json.loads((EXAMPLE / "sample-request.json").read_text())
    response = httpx.post(f"{server.url}/score", json=sample, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["digits"] == [0, 1]
    assert all(0.5 < confidence <= 1 for confidence in answer["confidence"])
    assert "digits model: test accuracy" in server.log  # the training print, turned into a log line


def test_with_azureml_model_dir_it_never_trains_and_says_what_it_found(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    (tmp_path / "model").mkdir()  # a registered folder model/: its file is one level down
    (tmp_path / "model" / "model.joblib").write_bytes(b"not read")
    (tmp_path / "README.txt").write_text("notes")
    server = serve(EXAMPLE / "score.py", "--model-dir", str(tmp_path), ready=False)
    assert server.wait_exit(60) != 0
    assert f"no model.joblib in AZUREML_MODEL_DIR ({tmp_path}): it holds README.txt, model/." in server.log
    assert "a registered folder model/ is served as $AZUREML_MODEL_DIR/model/model.joblib" in server.log
    assert "digits model: test accuracy" not in server.log  # nothing trained
    assert sorted(path.name for path in tmp_path.iterdir()) == ["README.txt", "model"]
