"""Azure ML entry scripts as published, served by a real `scorehost serve` process: models found with
`Model.get_model_path`, the documentation's `sklearn.externals.joblib` example, ONNX and PyTorch models.

Every model file is made by the test in a temporary AZUREML_MODEL_DIR: none is committed, nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import SCRIPTS, kill, served, start_server
from sklearn.linear_model import LinearRegression, LogisticRegression


def test_multi_model_finds_both_models_in_the_model_dir() -> None:
    env = {"AZUREML_MODEL_DIR": str(SCRIPTS / "multi_model")}
    with served("multi_model.py", env=env) as server, server.client() as client:
        response = client.post("/score", json={"data": {"name": "Ada", "values": [1, 2]}})
    assert response.status_code == 200, server.log
    assert response.json() == {"greeting": "Hello, Ada!", "greeting_version": "2", "scaled": [12.5, 15.0]}


def test_the_documentations_sklearn_externals_joblib_example(tmp_path: Path) -> None:
    features = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    model = LinearRegression().fit(features, features @ np.array([2.0, -1.0]) + 0.5)
    joblib.dump(model, tmp_path / "sklearn_regression_model.pkl")
    with served("sklearn_externals_joblib.py", env={"AZUREML_MODEL_DIR": str(tmp_path)}) as server:
        with server.client() as client:
            response = client.post("/score", json={"data": [[1.0, 1.0], [4.0, 0.0]]})
        log = server.log
    assert response.status_code == 200, log
    assert response.json() == pytest.approx([1.5, 8.5])
    warning = next(line for line in log.splitlines() if "sklearn.externals.joblib was imported" in line)
    assert "WARNING" in warning
    assert "scorehost.compat" in warning


@pytest.mark.parametrize("how", ["AZUREML_MODEL_DIR", "--model-dir"])
def test_model_get_model_path_finds_a_single_model(tmp_path: Path, how: str) -> None:
    version_folder = tmp_path / "linear_model" / "1"
    version_folder.mkdir(parents=True)
    (version_folder / "model.json").write_text(json.dumps({"weights": [2.0, -1.0], "bias": 0.5}), encoding="utf-8")
    if how == "--model-dir":
        context = served("azureml_model_path.py", "--model-dir", str(version_folder))
    else:
        context = served("azureml_model_path.py", env={"AZUREML_MODEL_DIR": str(version_folder)})
    with context as server, server.client() as client:
        response = client.post("/score", json={"data": [[1.0, 1.0], [3.0, 0.5]]})
    assert response.status_code == 200, server.log
    assert response.json() == {"predictions": [1.5, 6.0], "model_file": "model.json"}


def test_model_get_model_path_without_the_model_stops_the_server(tmp_path: Path) -> None:
    server = start_server([str(SCRIPTS / "azureml_model_path.py")], env={"AZUREML_MODEL_DIR": str(tmp_path)})
    try:
        assert server.wait_exit(60) == 3
    finally:
        kill(server)
    assert "Model 'linear_model' not found. Looked at: AZUREML_MODEL_DIR=" in server.log


def test_onnx_classifier(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    rng = np.random.default_rng(7)
    features = rng.normal(size=(60, 4)).astype(np.float32)
    labels = (features @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(np.int64)
    model = LogisticRegression().fit(features, labels)
    onnx_model = skl2onnx.convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(model): {"zipmap": False}},  # probabilities as a tensor, not a list of dicts
    )
    (tmp_path / "model.onnx").write_bytes(onnx_model.SerializeToString())
    rows = features[:5]

    with served("onnx_classifier.py", env={"AZUREML_MODEL_DIR": str(tmp_path)}) as server, server.client() as client:
        response = client.post("/score", json={"data": rows.tolist()})
    assert response.status_code == 200, server.log
    answer = response.json()
    assert answer["labels"] == model.predict(rows).tolist()
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(rows), atol=1e-5)
    assert "run() receives the raw request body" in server.log  # it reads json.loads(raw)["data"] itself


def test_torch_regressor(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {"linear.weight": torch.tensor([[1.0, -2.0, 0.5]]), "linear.bias": torch.tensor([0.25])}
    torch.save(state, tmp_path / "regressor.pt")

    with served("torch_regressor.py", env={"AZUREML_MODEL_DIR": str(tmp_path)}) as server, server.client() as client:
        response = client.post("/score", json={"data": [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [2.0, 0.5, -4.0]]})
    assert response.status_code == 200, server.log
    # x . (1, -2, 0.5) + 0.25, all exact in float32; the tensor went out as JSON without conversion in run().
    assert response.json() == {"predictions": [-1.25, 0.25, -0.75], "grad": False}
