"""The compat fixture scripts' init() and run(), called directly with requests built from real WSGI environs."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LinearRegression
from werkzeug.test import EnvironBuilder

from scorehost.compat import AMLRequest, AMLResponse, install_import_aliases, raw_http_requested

SCRIPTS = Path(__file__).parent.parent / "scripts"


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import a fixture script with the azureml.* aliases installed (the compat conftest removes them)."""
    install_import_aliases()
    monkeypatch.chdir(SCRIPTS)

    def _load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"compat_fixture_{name}", SCRIPTS / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.init()
        return module

    return _load


@pytest.fixture
def call() -> Iterator[Callable[..., Any]]:
    """`call(module, method="POST", data=...)`: run(AMLRequest) for an EnvironBuilder request to /score."""
    opened: list[AMLRequest] = []

    def _call(module: ModuleType, **kwargs: Any) -> Any:
        builder = EnvironBuilder(path="/score", **kwargs)
        try:
            request = AMLRequest(builder.get_environ())
        finally:
            builder.close()
        opened.append(request)
        return module.run(request)

    yield _call
    for request in opened:
        request.close()


def png(color: tuple[int, int, int], size: tuple[int, int] = (8, 6), kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, kind)
    return out.getvalue()


# --- raw_image_classifier.py ---------------------------------------------------------------------


def test_image_classifier_is_raw_and_get_answers_usage(load: Callable[[str], ModuleType], call: Any) -> None:
    module = load("raw_image_classifier")
    assert raw_http_requested()
    answer = call(module)
    assert isinstance(answer, AMLResponse)
    assert answer.status_code == 200
    assert answer.get_data(as_text=True).startswith("POST an image")


@pytest.mark.parametrize(
    ("color", "label"), [((250, 250, 250), "bright"), ((128, 128, 128), "medium"), ((5, 5, 5), "dark")]
)
@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png"])
def test_image_classifier_takes_raw_bytes(
    load: Callable[[str], ModuleType], call: Any, color: tuple[int, int, int], label: str, content_type: str
) -> None:
    module = load("raw_image_classifier")
    answer = call(module, method="POST", data=png(color), content_type=content_type)
    assert answer["label"] == label
    assert (answer["width"], answer["height"], answer["mode"], answer["format"]) == (8, 6, "RGB", "PNG")


def test_image_classifier_takes_a_multipart_image_field(load: Callable[[str], ModuleType], call: Any) -> None:
    module = load("raw_image_classifier")
    data = {"image": (io.BytesIO(png((20, 20, 20), (4, 3), "JPEG")), "photo.jpg", "image/jpeg")}
    answer = call(module, method="POST", data=data)
    assert (answer["label"], answer["width"], answer["height"], answer["format"]) == ("dark", 4, 3, "JPEG")


def test_image_classifier_rejects_what_is_not_an_image(load: Callable[[str], ModuleType], call: Any) -> None:
    module = load("raw_image_classifier")
    garbage = call(module, method="POST", data=b"not an image", content_type="application/octet-stream")
    assert garbage.status_code == 400
    assert garbage.mimetype == "application/json"
    assert "not an image" in json.loads(garbage.get_data())["error"]
    wrong_type = call(module, method="POST", data="hello", content_type="text/plain")
    assert wrong_type.status_code == 415
    put = call(module, method="PUT")
    assert (put.status_code, put.headers.getlist("Allow")) == (405, ["GET", "POST"])


# --- raw_cors_response.py ------------------------------------------------------------------------


CORS_LINES = {
    "Access-Control-Allow-Origin": ["*"],
    "Access-Control-Allow-Methods": ["GET", "POST", "OPTIONS"],
    "Access-Control-Allow-Headers": ["Content-Type", "Authorization"],
    "Allow": ["GET", "POST", "OPTIONS"],
}


def cors_lines(answer: AMLResponse) -> dict[str, list[str]]:
    return {name: answer.headers.getlist(name) for name in CORS_LINES}


def test_cors_script_answers_its_own_preflight(load: Callable[[str], ModuleType], call: Any) -> None:
    module = load("raw_cors_response")
    answer = call(
        module,
        method="OPTIONS",
        headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert (answer.status_code, answer.get_data()) == (200, b"")
    assert cors_lines(answer) == CORS_LINES


def test_cors_script_creates_with_201(load: Callable[[str], ModuleType], call: Any) -> None:
    module = load("raw_cors_response")
    answer = call(module, method="POST", json={"name": "x"})
    assert answer.status_code == 201
    assert json.loads(answer.get_data()) == {"created": {"name": "x"}}
    assert cors_lines(answer) == CORS_LINES
    assert answer.headers["x-ms-run-function-failed"] == "False"


def test_cors_script_get_echoes_the_query(load: Callable[[str], ModuleType], call: Any) -> None:
    module = load("raw_cors_response")
    answer = call(module, query_string="q=1")
    assert (answer.status_code, json.loads(answer.get_data())) == (200, {"query": {"q": "1"}})


# --- multi_model.py ------------------------------------------------------------------------------


def test_multi_model_finds_both_models(load: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(SCRIPTS / "multi_model"))
    module = load("multi_model")
    answer = module.run(json.dumps({"data": {"name": "Ada", "values": [1, 2]}}))
    assert answer == {"greeting": "Hello, Ada!", "greeting_version": "2", "scaled": [12.5, 15.0]}


def test_multi_model_without_its_models_says_where_it_looked(
    load: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"Model 'greeting' not found\. Looked at: AZUREML_MODEL_DIR="):
        load("multi_model")


# --- sklearn_externals_joblib.py -----------------------------------------------------------------


def test_the_documentations_sklearn_externals_joblib_example(
    load: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    features = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    model = LinearRegression().fit(features, features @ np.array([2.0, -1.0]) + 0.5)
    joblib.dump(model, tmp_path / "sklearn_regression_model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="scorehost.compat"):
        module = load("sklearn_externals_joblib")
    assert module.joblib is joblib
    assert [record.name for record in caplog.records] == ["scorehost.compat"]
    assert "sklearn.externals.joblib" in caplog.records[0].getMessage()
    predictions = module.run(json.dumps({"data": [[1.0, 1.0], [4.0, 0.0]]}))
    assert predictions == pytest.approx([1.5, 8.5])
