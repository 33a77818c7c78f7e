"""read_model_file and read_environment_yaml on real model.yml / environment.yml files."""

from __future__ import annotations

from pathlib import Path

import pytest
from _azureml_samples import write_file

from scorehost.azureml.assets import read_environment_yaml, read_model_file
from scorehost.errors import ProjectFileError

# azureml-examples cli/endpoints/online/managed/inference-schema/model.yml
INFSCHEMA_MODEL = """\
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: azureml-infschema
version: 1
path: models
"""

CONDA = """\
name: amlex-infschema
channels:
  - conda-forge
dependencies:
  - python=3.10
  - scikit-learn=1.2.2
  - pip:
    - joblib
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """managed/inference-schema: models/iris.pkl, env.yml."""
    root = tmp_path / "inference-schema"
    write_file(root / "models" / "iris.pkl", b"\x80\x04iris")
    write_file(root / "env.yml", CONDA)
    return root


def _model_refused(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ProjectFileError) as caught:
        read_model_file(path, overrides)
    return caught.value.message


def _environment_refused(path: Path) -> str:
    with pytest.raises(ProjectFileError) as caught:
        read_environment_yaml(path)
    return caught.value.message


# -- model.yml ---------------------------------------------------------------------------------------------------


def test_the_inference_schema_model_yml(folder: Path) -> None:
    model = read_model_file(write_file(folder / "model.yml", INFSCHEMA_MODEL))
    assert model.name == "azureml-infschema"
    assert model.version == "1"
    assert model.path == (folder / "models").resolve()
    assert model.type == "custom_model"
    assert model.description == ""
    assert model.tags == {}
    assert model.warnings == []  # $schema is dropped silently, as Azure's SDK does


def test_a_model_of_one_file_with_every_used_field(folder: Path) -> None:
    path = write_file(
        folder / "model.yml",
        """\
name: iris
version: 1.0
path: ./models/iris.pkl
type: mlflow_model
description: iris classifier
tags: {framework: sklearn, year: 2024}
properties: {source: notebook}
stage: Production
""",
    )
    model = read_model_file(path)
    assert model.path == (folder / "models" / "iris.pkl").resolve()
    assert model.version == "1.0"  # as Azure's VersionField keeps it
    assert model.type == "mlflow_model"
    assert model.description == "iris classifier"
    assert model.tags == {"framework": "sklearn", "year": "2024"}
    assert model.properties == {"source": "notebook"}
    assert model.warnings == []


@pytest.mark.parametrize(
    ("written", "read"),
    [("custom_model", "custom_model"), ("Triton_Model", "triton_model"), ("MLFLOW_MODEL", "mlflow_model")],
)
def test_model_types(folder: Path, written: str, read: str) -> None:
    model = read_model_file(write_file(folder / "model.yml", f"name: iris\npath: models\ntype: {written}\n"))
    assert model.type == read


def test_a_bad_model_type_is_refused_with_its_line(folder: Path) -> None:
    path = write_file(folder / "model.yml", "name: iris\npath: models\ntype: pickle\n")
    message = _model_refused(path)
    assert f"{path}, line 3: " in message
    assert "custom_model, mlflow_model, triton_model" in message
    assert "'pickle'" in message


def test_a_model_without_name_or_path_is_refused(folder: Path) -> None:
    assert "has no name" in _model_refused(write_file(folder / "model.yml", "path: models\n"))
    assert "has no path" in _model_refused(write_file(folder / "model.yml", "name: iris\nversion: 1\n"))


def test_a_missing_model_path_is_refused_with_its_line(folder: Path) -> None:
    path = write_file(folder / "model.yml", "name: iris\nversion: 1\npath: model\n")
    message = _model_refused(path)
    assert f"{path}, line 3: " in message
    assert str(folder / "model") in message


def test_model_overrides(folder: Path) -> None:
    path = write_file(folder / "model.yml", INFSCHEMA_MODEL)
    model = read_model_file(path, ["version=7", "name=iris2", "path=models/iris.pkl"])
    assert (model.name, model.version) == ("iris2", "7")
    assert model.path == (folder / "models" / "iris.pkl").resolve()
    message = _model_refused(path, ("path=nothing-here",))
    assert message.startswith("model.yml (--set path): ")


def test_a_model_with_an_unknown_field_is_refused(folder: Path) -> None:
    path = write_file(folder / "model.yml", "name: iris\npath: models\nframework: sklearn\n")
    message = _model_refused(path)
    assert f"{path}, line 3: framework" in message
    assert "model schema" in message


def test_model_fields_pasted_from_az_ml_show_are_dropped_but_job_name_is_ignored(folder: Path) -> None:
    path = write_file(
        folder / "model.yml",
        """\
name: iris
path: models
creation_context:
  created_by: someone
  created_at: '2024-01-01T00:00:00Z'
job_name: busy_lamp_1234
latest_version: '3'
""",
    )
    model = read_model_file(path)
    assert len(model.warnings) == 1
    assert "job_name" in model.warnings[0]
    for name in ("creation_context", "latest_version"):
        assert name not in model.warnings[0]


# -- environment.yml ---------------------------------------------------------------------------------------------


def test_an_environment_with_conda_file_and_image(folder: Path) -> None:
    path = write_file(
        folder / "environment.yml",
        """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: amlex-infschema
version: 2
image: mcr.microsoft.com/azureml/minimal-py312-inference:latest
conda_file: env.yml
description: iris
tags: {team: ml}
os_type: linux
""",
    )
    environment = read_environment_yaml(path)
    assert environment.name == "amlex-infschema"
    assert environment.version == "2"
    assert environment.conda_file == (folder / "env.yml").resolve()
    assert environment.image == "mcr.microsoft.com/azureml/minimal-py312-inference:latest"
    assert environment.description == "iris"
    assert environment.tags == {"team": "ml"}
    assert len(environment.warnings) == 1
    assert "os_type" in environment.warnings[0]
    assert "$schema" not in environment.warnings[0]


def test_an_image_only_environment_gives_a_warning(folder: Path) -> None:
    path = write_file(folder / "environment.yml", "name: curated\nimage: mcr.microsoft.com/azureml/sklearn:1\n")
    environment = read_environment_yaml(path)
    assert environment.conda_file is None
    assert environment.image == "mcr.microsoft.com/azureml/sklearn:1"
    assert len(environment.warnings) == 1
    assert "only an image" in environment.warnings[0]


def test_an_environment_with_neither_conda_file_nor_image_is_refused(folder: Path) -> None:
    path = write_file(folder / "environment.yml", "name: e\nbuild:\n  path: docker-context\n")
    message = _environment_refused(path)
    assert str(path) in message
    assert "neither conda_file nor image" in message


def test_a_missing_conda_file_is_refused_with_its_line(folder: Path) -> None:
    path = write_file(folder / "environment.yml", "name: e\nconda_file: conda.yml\n")
    message = _environment_refused(path)
    assert f"{path}, line 2: " in message
    assert str(folder / "conda.yml") in message


def test_an_environment_without_a_name_is_refused(folder: Path) -> None:
    assert "has no name" in _environment_refused(write_file(folder / "environment.yml", "conda_file: env.yml\n"))


@pytest.mark.parametrize(
    ("text", "line"),
    [(CONDA, 4), ("channels:\n  - conda-forge\n", 1), ("name: x\n\n\ndependencies:\n  - numpy\n", 4)],
    ids=["full", "channels-only", "dependencies-only"],
)
def test_a_conda_file_given_as_environment_is_refused_with_the_command_for_it(
    folder: Path, text: str, line: int
) -> None:
    path = write_file(folder / "conda.yaml", text)
    message = _environment_refused(path)
    assert f"{path}, line {line}: " in message
    assert "this is a conda file" in message
    assert "scorehost environments build conda.yaml" in message
    assert "conda_file: conda.yaml" in message


def test_an_environment_with_an_unknown_field_is_refused(folder: Path) -> None:
    path = write_file(folder / "environment.yml", "name: e\nconda_file: env.yml\npython: '3.12'\n")
    message = _environment_refused(path)
    assert f"{path}, line 3: python" in message
    assert "environment schema" in message
