"""Model.get_model_path over real folders, one layout at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorehost.compat import Model, ModelNotFound


def make(root: Path, *files: str) -> Path:
    """Create each relative file (with a little content) under root; return root."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return root


@pytest.fixture
def app_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, as the script's folder is while hosting."""
    root = tmp_path / "app"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_root: Path) -> Path:
    """A deployment's models folder; the tests point AZUREML_MODEL_DIR at it or inside it."""
    return tmp_path / "var" / "azureml-models"


# --- one model: AZUREML_MODEL_DIR is the model's version folder ---------------------------------


def test_single_model_one_file(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "mymodel/3/model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3"))
    assert Model.get_model_path("mymodel") == str(model_dir / "mymodel" / "3" / "model.pkl")


def test_single_model_several_files_gives_the_version_folder(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "mymodel/3/model.pkl", "mymodel/3/vocab.json")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3"))
    assert Model.get_model_path("mymodel") == str(model_dir / "mymodel" / "3")


def test_single_model_registered_folder_gives_that_folder(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "mymodel/3/outputs/model.pkl", "mymodel/3/outputs/vocab.json")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3") + "/")  # a trailing slash too
    assert Model.get_model_path(model_name="mymodel") == str(model_dir / "mymodel" / "3" / "outputs")


def test_single_model_hidden_files_do_not_count(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "mymodel/3/model.onnx", "mymodel/3/.amlignore")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3"))
    assert Model.get_model_path("mymodel") == str(model_dir / "mymodel" / "3" / "model.onnx")


def test_single_model_uses_the_deployed_version_not_a_later_sibling(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(model_dir, "mymodel/3/model.pkl", "mymodel/4/model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3"))
    assert Model.get_model_path("mymodel") == str(model_dir / "mymodel" / "3" / "model.pkl")


def test_single_model_another_version_is_found_beside_it(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "mymodel/3/model.pkl", "mymodel/2/old.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3"))
    assert Model.get_model_path("mymodel", version=3) == str(model_dir / "mymodel" / "3" / "model.pkl")
    assert Model.get_model_path("mymodel", version=2) == str(model_dir / "mymodel" / "2" / "old.pkl")
    with pytest.raises(ModelNotFound, match=r"version 7"):
        Model.get_model_path("mymodel", version=7)


# --- several models: AZUREML_MODEL_DIR holds <name>/<version>/ for each -------------------------


def test_several_models_each_by_name(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "iris_clf/1/model.pkl", "size_reg/2/model.joblib", "size_reg/2/scaler.joblib")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    assert Model.get_model_path("iris_clf") == str(model_dir / "iris_clf" / "1" / "model.pkl")
    assert Model.get_model_path("size_reg") == str(model_dir / "size_reg" / "2")


def test_the_latest_version_is_chosen_numerically(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "m/2/two.pkl", "m/10/ten.pkl", "m/9/nine.pkl", "m/latest/not-a-version.pkl", "m/11.txt")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    assert Model.get_model_path("m") == str(model_dir / "m" / "10" / "ten.pkl")


def test_a_version_can_be_asked_for_as_int_or_text(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "m/2/two.pkl", "m/10/ten.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    assert Model.get_model_path("m", 2) == Model.get_model_path("m", "2") == str(model_dir / "m" / "2" / "two.pkl")


def test_a_missing_version_names_the_versions_there(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "m/2/two.pkl", "m/10/ten.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    with pytest.raises(ModelNotFound, match=r"no version 5; versions there: 2, 10"):
        Model.get_model_path("m", version=5)


def test_an_unversioned_file_in_the_models_folder(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "model.pkl", "other.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    assert Model.get_model_path("model.pkl") == str(model_dir / "model.pkl")


def test_the_variable_may_name_the_models_own_folder(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(model_dir, "m/1/a.pkl", "m/2/b.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "m"))
    assert Model.get_model_path("m") == str(model_dir / "m" / "2" / "b.pkl")


def test_the_variable_wins_over_the_app_roots_models(
    model_dir: Path, app_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(model_dir, "m/1/deployed.pkl")
    make(app_root, "azureml-models/m/5/cached.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    assert Model.get_model_path("m") == str(model_dir / "m" / "1" / "deployed.pkl")


# --- the app root (the working directory), as the v1 SDK looks ------------------------------------


def test_azureml_models_in_the_app_root(app_root: Path) -> None:
    make(app_root, "azureml-models/m/1/old.pkl", "azureml-models/m/3/model.pkl")
    assert Model.get_model_path("m") == str(app_root / "azureml-models" / "m" / "3" / "model.pkl")
    assert Model.get_model_path("m", version=1) == str(app_root / "azureml-models" / "m" / "1" / "old.pkl")


def test_azureml_models_in_the_app_root_when_the_variable_lacks_the_model(
    model_dir: Path, app_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(model_dir, "other/1/model.pkl")
    make(app_root, "azureml-models/m/2/a.bin", "azureml-models/m/2/b.bin")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    assert Model.get_model_path("m") == str(app_root / "azureml-models" / "m" / "2")


def test_a_file_named_after_the_model_in_the_app_root(app_root: Path) -> None:
    make(app_root, "model.pkl")
    assert Model.get_model_path("model.pkl") == str(app_root / "model.pkl")


# --- nothing there ----------------------------------------------------------------------------------


def test_nothing_found_names_every_place_looked(
    model_dir: Path, app_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(model_dir, "other/1/model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    with pytest.raises(ModelNotFound) as raised:
        Model.get_model_path("mymodel")
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    assert message.startswith("Model 'mymodel' not found.")
    assert f"AZUREML_MODEL_DIR={model_dir} (its parent is not named 'mymodel' and it holds no 'mymodel')" in message
    assert f"{app_root / 'azureml-models' / 'mymodel'} (missing)" in message
    assert f"{app_root / 'mymodel'} (missing)" in message
    assert (raised.value.model_name, raised.value.version) == ("mymodel", None)


def test_nothing_found_without_the_variable_says_it_is_not_set(app_root: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"AZUREML_MODEL_DIR \(not set\)"):
        Model.get_model_path("mymodel")


def test_a_missing_model_dir_is_reported_as_missing(
    tmp_path: Path, app_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFound, match=r"nowhere \(missing\)"):
        Model.get_model_path("mymodel")


def test_an_empty_version_folder_is_not_a_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (model_dir / "mymodel" / "3").mkdir(parents=True)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir / "mymodel" / "3"))
    with pytest.raises(ModelNotFound, match=r"3 \(empty\)"):
        Model.get_model_path("mymodel")


# --- the rest of the SDK's surface ------------------------------------------------------------------


def test_a_workspace_is_accepted_and_ignored(app_root: Path) -> None:
    make(app_root, "azureml-models/m/1/model.pkl")
    assert Model.get_model_path("m", _workspace=object()).endswith("model.pkl")


def test_model_objects_need_the_real_sdk() -> None:
    with pytest.raises(NotImplementedError, match="get_model_path"):
        Model("workspace", name="m")
