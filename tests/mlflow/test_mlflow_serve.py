"""`scorehost serve` without a script, for an MLflow model: the built-in scoring script answers Azure ML's no-code
request forms with the predictions MLflow's pyfunc flavour makes, in this interpreter (`--env-manager local`) or in
an environment built from the model's own requirements."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _mlflow_models import COLUMNS, ROWS, load_pyfunc, save_iris_model, shared_workspace
from conftest import Server, kill, start_server, wait_ready

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_iris_model(tmp_path_factory.mktemp("mlflow") / "model")


@pytest.fixture(scope="module")
def expected(model_dir: Path) -> list[int]:
    import pandas as pd

    return list(load_pyfunc(model_dir).predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist())


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("collected")


@pytest.fixture(scope="module")
def local_server(model_dir: Path, collected: Path) -> Iterator[Server]:
    args = ["--model-dir", str(model_dir), "--env-manager", "local", "--collect-dir", str(collected)]
    server = start_server([*args, "--collect", "model_inputs", "--collect", "model_outputs"])
    try:
        yield wait_ready(server, timeout=120)
    finally:
        kill(server)


def _score(server: Server, body: Any) -> Any:
    with server.client() as client:
        return client.post("/score", json=body)


def test_split_list_records_and_named_columns_predict_as_mlflow_does(local_server: Server, expected: list[int]) -> None:
    split = {"columns": COLUMNS, "index": list(range(len(ROWS))), "data": ROWS}
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    named = {name: [row[i] for row in ROWS] for i, name in enumerate(COLUMNS)}
    for form in (split, ROWS, records, named):
        answer = _score(local_server, {"input_data": form})
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
    answer = _score(local_server, {"input_data": split, "params": {}})
    assert answer.json() == expected
    assert "served by the built-in scoring script, in this environment" in local_server.log
    assert "serving the MLflow model in" in local_server.log
    assert "flavors python_function, sklearn" in local_server.log


def test_a_wrong_column_or_type_is_a_400_that_names_it(local_server: Server) -> None:
    renamed = {"columns": [*COLUMNS[:3], "petal_w"], "data": ROWS}
    answer = _score(local_server, {"input_data": renamed})
    assert answer.status_code == 400
    assert "column 'petal_width' is missing" in answer.json()["message"]
    answer = _score(local_server, {"input_data": [[5.1, "wide", 1.4, 0.2]]})
    assert answer.status_code == 400
    assert "column 'sepal_width' must hold double values" in answer.json()["message"]
    answer = _score(local_server, {"data": ROWS})
    assert answer.status_code == 400
    assert "input_data" in answer.json()["message"]


def test_model_inputs_and_outputs_are_collected_as_azure_collects_them(local_server: Server, collected: Path) -> None:
    answer = _score(local_server, {"input_data": ROWS[:1]})
    assert answer.status_code == 200
    deadline = time.monotonic() + 10
    rows: dict[str, Any] = {}
    while time.monotonic() < deadline and len(rows) < 2:
        time.sleep(0.2)  # the writer thread appends a few times a second
        for path in collected.rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row["xrequestid"] == answer.headers["x-request-id"]:
                    rows[row["type"].rpartition(".")[2]] = row["data"]
    assert rows["model_inputs"] == [dict(zip(COLUMNS, ROWS[0], strict=True))]
    assert rows["model_outputs"] == answer.json()


def test_the_input_example_is_in_swagger(local_server: Server, model_dir: Path) -> None:
    example = json.loads((model_dir / "input_example.json").read_text())
    with local_server.client() as client:
        document = client.get("/swagger.json").json()
    sent = document["definitions"]["ServiceInput"]["example"]["input_data"]
    assert sent["columns"] == example["columns"] == COLUMNS
    assert sent["index"] == [0, 1]
    for row, written in zip(sent["data"], example["data"], strict=True):  # pandas writes 10 digits
        assert row == pytest.approx(written)
    assert document["definitions"]["ServiceOutput"]["format"] == "numpy.ndarray"


def test_a_registered_model_is_served_in_its_own_environment(
    model_dir: Path, expected: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = shared_workspace(tmp_path_factory.getbasetemp())
    register = [sys.executable, "-m", "scorehost", "models", "--home", str(home), "register", "iris", str(model_dir)]
    done = subprocess.run([*register, "--type", "mlflow_model"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    server = start_server(["--model", "iris", "--home", str(home)])
    try:
        wait_ready(server, timeout=280)  # the first build downloads MLflow, scikit-learn and pandas
        answer = _score(server, {"input_data": {"columns": COLUMNS, "index": [0, 1, 2, 3], "data": ROWS}})
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected
        command = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        kill(server)
    assert command[0].decode().startswith(str(home / "environments"))
    assert re.search(r"--model iris \(iris:\d+\) is an MLflow model", server.log)
    assert "in an environment built from its requirements" in server.log


def test_without_an_mlflow_model_a_script_is_still_asked_for(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    server = start_server(["--model-dir", str(folder)])
    try:
        assert server.wait_exit(60) == 2
    finally:
        kill(server)
    assert "No entry script given" in server.log


def test_mlflow_refusing_the_input_is_a_400_without_mlflow_s_words(model_dir: Path, expected: list[int]) -> None:
    import pandas as pd

    from scorehost.mlflow import read_mlmodel
    from scorehost.mlflow.scoring import ServedModel

    served = ServedModel(read_mlmodel(model_dir))
    served.load()
    assert served.predict(pd.DataFrame(ROWS, columns=COLUMNS)) == expected
    # What the request's conversion would have refused, handed to MLflow as it is: its schema check refuses it.
    answer = served.predict(pd.DataFrame([["secret-value", 1, 2, 3]], columns=COLUMNS))
    assert answer.status_code == 400
    body = json.loads(answer.get_data(as_text=True))
    assert body["message"].startswith("The input does not match the MLflow model's signature")
    assert "sepal_length (double)" in body["message"]
    assert "secret-value" not in body["message"]
