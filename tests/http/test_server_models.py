"""`scorehost serve --model NAME[:VERSION|:ALIAS]`: registered models served for real.

Each test registers into its own workspace (a real SQLite registry and store under tmp), starts the real
server with `--model`, and checks over HTTP that `/score` answers from the registered files, and on disk that
the AZUREML_MODEL_DIR it laid out is its own: files with the stored bytes that lead back to no stored blob.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import SCRIPTS, Server, kill, served, start_server, wait_ready
from sklearn.linear_model import LogisticRegression

from scorehost.registry import Registry

ROWS = [[2.0, 1.0], [-2.0, -1.0]]  # class 1 and class 0 for the plain model; the inverted one swaps them


def train(folder: Path, *, inverted: bool = False) -> Path:
    """A tiny classifier dumped as `folder/model.pkl`: the class is whether x1 + x2 > 0 (or <= 0, inverted)."""
    features = np.array([[-2.0, -1.0], [-1.0, -1.5], [-0.5, -2.0], [2.0, 1.0], [1.0, 1.5], [0.5, 2.0]])
    labels = [1, 1, 1, 0, 0, 0] if inverted else [0, 0, 0, 1, 1, 1]
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(features, labels), folder / "model.pkl")
    return folder / "model.pkl"


def models_cli(home: Path, *args: str) -> str:
    """Run the real `scorehost models --home HOME ARGS` command; return its output."""
    result = subprocess.run(
        [sys.executable, "-m", "scorehost", "models", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def model_dir_of(server: Server) -> tuple[Path, str]:
    """The AZUREML_MODEL_DIR and the resolved versions that the start-up log reports."""
    match = re.search(r"model dir: (\S+); models: (.*)$", server.wait_for_log(r"model dir: "))
    assert match, server.log
    return Path(match.group(1)), match.group(2)


def assert_own_copy(registry: Registry, ref: str, version_folder: Path) -> None:
    """Every file of `ref` sits in `version_folder` under its registered path with the stored bytes, as a file of
    its own (a reflink or a copy): writing it cannot reach the store's blob."""
    stored = registry.files(ref)
    assert stored
    for item in stored:
        served_file = version_folder / item.path
        blob = registry.store.path_of(item.digest)
        assert not served_file.is_symlink()
        assert served_file.stat().st_ino != blob.stat().st_ino, item.path
        assert blob.stat().st_nlink == 1  # no other name anywhere
        assert served_file.read_bytes() == blob.read_bytes()
        assert served_file.stat().st_mode & 0o777 == 0o444


def fails_to_start(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start the real server, expecting it to exit at once; return its exit code and log."""
    server = start_server(args=list(args), env=env)
    try:
        code = server.wait_exit(60)
    finally:
        kill(server)
    assert "listening on" not in server.log
    return code, server.log


# --- one model: AZUREML_MODEL_DIR is its version folder ------------------------------------------------


@pytest.fixture(scope="module")
def one_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    home = tmp_path_factory.mktemp("workspace")
    with Registry(home) as registry:
        registry.register("sklearn_mnist", train(tmp_path_factory.mktemp("v1")), tags={"team": "vision"})
        registry.set_alias("sklearn_mnist", "production", 1)
    with served("registered_sklearn.py", "--home", str(home), "--model", "sklearn_mnist:production") as server:
        yield server, home


def test_a_registered_model_answers_as_the_documentation_loads_it(one_model: tuple[Server, Path]) -> None:
    server, _ = one_model
    with server.client() as client:
        response = client.post("/score", json={"data": ROWS})
    assert response.status_code == 200, server.log
    assert response.json() == [1, 0]


def test_one_model_is_served_from_its_version_folder(one_model: tuple[Server, Path]) -> None:
    server, home = one_model
    model_dir, versions = model_dir_of(server)
    assert versions == "sklearn_mnist:1 (production)"
    assert model_dir.parts[-3:] == ("models", "sklearn_mnist", "1")
    assert model_dir.parents[2].parent == home / "servers"  # servers/<pid>.<token>/models/sklearn_mnist/1
    assert model_dir.parents[2].name.startswith(f"{server.process.pid}.")
    assert sorted(os.listdir(model_dir)) == ["model.pkl"]


def test_the_served_files_are_the_servers_own(one_model: tuple[Server, Path]) -> None:
    server, home = one_model
    model_dir, _ = model_dir_of(server)
    with Registry(home) as registry:
        assert_own_copy(registry, "sklearn_mnist:1", model_dir)


# --- several models: AZUREML_MODEL_DIR holds <name>/<version>/... ---------------------------------------


def write_encoder(folder: Path, vocab: dict[str, int], scale: str) -> Path:
    """A model registered as a folder named `encoder`, with a nested subfolder."""
    encoder = folder / "encoder"
    (encoder / "weights").mkdir(parents=True)
    (encoder / "vocab.json").write_text(json.dumps(vocab))
    (encoder / "weights" / "scale.txt").write_text(scale)
    return encoder


@pytest.fixture(scope="module")
def multi_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("workspace")
    sources = tmp_path_factory.mktemp("sources")
    (sources / "labels.json").write_text(json.dumps({"labels": ["cat", "dog", "bird"]}))
    with Registry(home) as registry:
        registry.register("labels", sources / "labels.json")
        registry.register("encoder", write_encoder(sources / "v1", {"old": 0}, "0"))
        registry.register("encoder", write_encoder(sources / "v2", {"a": 1, "b": 2, "c": 3}, "0.5"))
    return home


@pytest.fixture(scope="module")
def two_models(multi_home: Path) -> Iterator[Server]:
    args = ("--home", str(multi_home), "--model", "labels:1", "--model", "encoder:2")
    with served("registered_multi.py", *args) as server:
        yield server


def test_several_models_answer_from_their_name_and_version_folders(two_models: Server) -> None:
    with two_models.client() as client:
        response = client.post("/score", json={"data": ["a", "c"]})
    assert response.status_code == 200, two_models.log
    assert response.json() == [{"word": "a", "label": "dog", "score": 0.5}, {"word": "c", "label": "cat", "score": 1.5}]


def test_several_models_laid_out_side_by_side(two_models: Server) -> None:
    model_dir, versions = model_dir_of(two_models)
    assert versions == "labels:1, encoder:2"
    assert model_dir.name == "models"
    assert sorted(os.listdir(model_dir)) == ["encoder", "labels"]
    assert os.listdir(model_dir / "encoder") == ["2"]  # only the version asked for
    assert os.listdir(model_dir / "labels" / "1") == ["labels.json"]


def test_a_registered_folder_keeps_its_name_and_its_files_are_its_own(multi_home: Path, two_models: Server) -> None:
    model_dir, _ = model_dir_of(two_models)
    version_folder = model_dir / "encoder" / "2"
    assert os.listdir(version_folder) == ["encoder"]
    assert sorted(p.relative_to(version_folder).as_posix() for p in version_folder.rglob("*") if p.is_file()) == [
        "encoder/vocab.json",
        "encoder/weights/scale.txt",
    ]
    with Registry(multi_home) as registry:
        assert_own_copy(registry, "encoder:2", version_folder)
        assert_own_copy(registry, "labels:1", model_dir / "labels" / "1")


def test_models_and_home_from_the_environment(multi_home: Path) -> None:
    env = {"SCOREHOST_HOME": str(multi_home), "SCOREHOST_MODELS": "labels:1, encoder:2"}
    with served("registered_multi.py", env=env) as server, server.client() as client:
        response = client.post("/score", json={"data": ["b"]})
    assert response.status_code == 200, server.log
    assert response.json() == [{"word": "b", "label": "bird", "score": 1.0}]
    assert model_dir_of(server)[1] == "labels:1, encoder:2"


def test_preloaded_workers_share_the_laid_out_models(multi_home: Path) -> None:
    args = ("--home", str(multi_home), "--model", "labels:1", "--model", "encoder", "--workers", "2", "--preload")
    with served("registered_multi.py", *args) as server, server.client() as client:
        answers = [client.post("/score", json={"data": ["a"]}) for _ in range(20)]
    assert {response.status_code for response in answers} == {200}, server.log
    assert answers[0].json() == [{"word": "a", "label": "dog", "score": 0.5}]
    assert model_dir_of(server)[1] == "labels:1, encoder:2 (latest)"


# --- a script that writes to its model folder -------------------------------------------------------------


def test_a_script_writing_to_its_models_changes_neither_the_registry_nor_the_next_server(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    model = train(tmp_path / "v1")
    models_cli(home, "register", "digits", str(tmp_path / "v1"))  # a registered folder, as digits:3 was
    size = model.stat().st_size
    args = ("--home", str(home), "--model", "digits:1")
    with served("tampers_with_its_model.py", *args) as first, first.client() as client:
        assert client.post("/score", json={"data": 1}).json() == {"files": ["v1/model.pkl"], "size": size}
        folder = model_dir_of(first)[0] / "v1"
        assert sorted(os.listdir(folder)) == ["model.joblib", "model.pkl"]  # its own folder: it may write there
        assert models_cli(home, "verify").endswith("all intact\n")  # the stored bytes did not change
        with served("tampers_with_its_model.py", *args) as second, second.client() as other:
            # Its init() found the registered file only, at its registered size.
            assert other.post("/score", json={"data": 1}).json() == {"files": ["v1/model.pkl"], "size": size}
            assert model_dir_of(second)[0] != model_dir_of(first)[0]
    assert models_cli(home, "verify").endswith("all intact\n")


def test_a_server_that_stops_removes_its_folder(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    with Registry(home) as registry:
        registry.register("m", train(tmp_path / "v1"))
    server = start_server([str(SCRIPTS / "registered_sklearn.py"), "--home", str(home), "--model", "m:1"])
    try:
        wait_ready(server)
        folder = model_dir_of(server)[0].parents[2]
        assert folder.is_dir()
        server.process.send_signal(signal.SIGTERM)
        assert server.wait_exit(60) == 0, server.log
    finally:
        kill(server)
    assert not folder.exists()
    assert list((home / "servers").iterdir()) == []


# --- aliases ---------------------------------------------------------------------------------------------


def test_moving_an_alias_serves_the_new_version_after_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    models_cli(home, "register", "sklearn_mnist", str(train(tmp_path / "v1")))
    models_cli(home, "register", "sklearn_mnist", str(train(tmp_path / "v2", inverted=True)))
    models_cli(home, "alias", "sklearn_mnist", "production", "1")
    args = ("--home", str(home), "--model", "sklearn_mnist:production")
    with served("registered_sklearn.py", *args) as server, server.client() as client:
        assert client.post("/score", json={"data": ROWS}).json() == [1, 0]
    assert model_dir_of(server)[1] == "sklearn_mnist:1 (production)"

    models_cli(home, "alias", "sklearn_mnist", "production", "2")
    with served("registered_sklearn.py", *args) as server, server.client() as client:
        assert client.post("/score", json={"data": ROWS}).json() == [0, 1]
    model_dir, versions = model_dir_of(server)
    assert versions == "sklearn_mnist:2 (production)"
    assert model_dir.parts[-2:] == ("sklearn_mnist", "2")


def test_a_bare_name_serves_the_latest_version(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    with Registry(home) as registry:
        registry.register("sklearn_mnist", train(tmp_path / "v1"))
        registry.register("sklearn_mnist", train(tmp_path / "v2", inverted=True))
    args = ("--home", str(home), "--model", "sklearn_mnist")
    with served("registered_sklearn.py", *args) as server, server.client() as client:
        assert client.post("/score", json={"data": ROWS}).json() == [0, 1]
    assert model_dir_of(server)[1] == "sklearn_mnist:2 (latest)"


# --- Model.get_model_path (azureml.core.model) over registered layouts ---------------------------------------


def test_get_model_path_finds_one_registered_model(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    (tmp_path / "model.json").write_text(json.dumps({"weights": [2.0, -1.0], "bias": 0.5}))
    with Registry(home) as registry:
        registry.register("linear_model", tmp_path / "model.json")
    args = ("--home", str(home), "--model", "linear_model:1")
    with served("azureml_model_path.py", *args) as server, server.client() as client:
        response = client.post("/score", json={"data": [[1.0, 1.0], [3.0, 0.5]]})
    assert response.status_code == 200, server.log
    assert response.json() == {"predictions": [1.5, 6.0], "model_file": "model.json"}


def test_get_model_path_finds_several_registered_models(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    scaler = tmp_path / "scaler_params"  # registered as a folder: get_model_path gives that folder
    shutil.copytree(SCRIPTS / "multi_model" / "scaler" / "3", scaler)
    with Registry(home) as registry:
        for version in ("1", "2"):
            registry.register("greeting", SCRIPTS / "multi_model" / "greeting" / version / "greeting.json")
        for _ in range(3):
            registry.register("scaler", scaler)
    args = ("--home", str(home), "--model", "greeting", "--model", "scaler:3")
    with served("multi_model.py", *args) as server, server.client() as client:
        response = client.post("/score", json={"data": {"name": "Ada", "values": [1, 2]}})
    assert response.status_code == 200, server.log
    assert response.json() == {"greeting": "Hello, Ada!", "greeting_version": "2", "scaled": [12.5, 15.0]}


# --- start-up errors -------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    with Registry(tmp_path / "workspace") as registry:
        registry.register("sklearn_mnist", train(tmp_path / "v1"))
        registry.set_alias("sklearn_mnist", "production", 1)
    return tmp_path / "workspace"


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("mnist", "no model named 'mnist' (registered: sklearn_mnist)"),
        ("sklearn_mnist:7", "model 'sklearn_mnist' has no version 7 (versions: 1)"),
        ("sklearn_mnist:staging", "model 'sklearn_mnist' has no alias 'staging' (aliases: production)"),
    ],
)
def test_an_unknown_reference_stops_start_up(home: Path, ref: str, problem: str) -> None:
    code, log = fails_to_start(str(SCRIPTS / "registered_sklearn.py"), "--home", str(home), "--model", ref)
    assert code == 3
    assert f"Cannot serve --model {ref}: {problem}. `scorehost models --home {home} list` shows the registered" in log
    assert log.count("scorehost models") == 1  # the registry's own hint is not repeated


def test_one_unknown_reference_among_good_ones_is_named(home: Path) -> None:
    script = str(SCRIPTS / "registered_sklearn.py")
    code, log = fails_to_start(
        script, "--model", "sklearn_mnist", "--model", "encoder:3", env={"SCOREHOST_HOME": str(home)}
    )
    assert code == 3
    assert "Cannot serve --model encoder:3: no model named 'encoder'" in log


def test_a_missing_workspace_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_workspace"
    code, log = fails_to_start(str(SCRIPTS / "registered_sklearn.py"), "--home", str(missing), "--model", "m:1")
    assert code == 3
    assert f"Cannot serve --model m:1: there is no workspace at {missing}" in log
    assert not missing.exists()


def test_a_version_past_what_the_registry_holds_is_a_usage_error(home: Path) -> None:
    script = str(SCRIPTS / "registered_sklearn.py")
    code, log = fails_to_start(script, "--home", str(home), "--model", "sklearn_mnist:99999999999999999999999")
    assert code == 2
    assert (
        "Invalid value for '--model': '99999999999999999999999' is not a version: versions are whole numbers from 1 "
        "to 2147483647"
    ) in log
    assert "Traceback" not in log


def test_a_malformed_reference_is_a_usage_error(home: Path) -> None:
    code, log = fails_to_start(str(SCRIPTS / "registered_sklearn.py"), "--home", str(home), "--model", "sklearn_mnist:")
    assert code == 2
    assert "Invalid value for '--model': 'sklearn_mnist:' ends with ':'; write NAME, NAME:VERSION or NAME:ALIAS" in log


def test_model_and_model_dir_together_are_a_usage_error(home: Path, tmp_path: Path) -> None:
    script = str(SCRIPTS / "registered_sklearn.py")
    code, log = fails_to_start(script, "--home", str(home), "--model", "sklearn_mnist", "--model-dir", str(tmp_path))
    assert code == 2
    assert "Usage: " in log
    assert "Error: --model and --model-dir cannot be used together" in log
    assert f"--model-dir ({tmp_path}) sets it too" in log


@pytest.mark.parametrize("variable", ["AZUREML_MODEL_DIR", "SCOREHOST_MODEL_DIR"])
def test_model_with_a_model_dir_variable_is_a_usage_error(home: Path, tmp_path: Path, variable: str) -> None:
    script = str(SCRIPTS / "registered_sklearn.py")
    code, log = fails_to_start(script, "--home", str(home), "--model", "sklearn_mnist", env={variable: str(tmp_path)})
    assert code == 2
    assert "Error: --model and --model-dir cannot be used together" in log
    assert f"{variable} ({tmp_path}) sets it too" in log
