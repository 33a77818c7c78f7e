"""read_deployment_file on azureml-examples' layout and variants of it, all real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _azureml_samples import DEPLOYMENT_HEAD as HEAD
from _azureml_samples import OnlineSamples, write_file

from scorehost.azureml.deployment import (
    DeploymentFile,
    InlineEnvironment,
    InlineModel,
    RequestSettings,
    ScaleSettings,
    read_deployment_file,
)
from scorehost.azureml.references import AssetReference
from scorehost.errors import ProjectFileError


def _read(online: OnlineSamples, body: str, overrides: tuple[str, ...] = ()) -> DeploymentFile:
    return read_deployment_file(online.write("d.yml", body), overrides)


def _refused(online: OnlineSamples, body: str, overrides: tuple[str, ...] = ()) -> str:
    path = online.write("d.yml", body)
    with pytest.raises(ProjectFileError) as caught:
        read_deployment_file(path, overrides)
    return caught.value.message


# -- the Azure sample ---------------------------------------------------------------------------------------------


def test_the_azure_sample_blue_deployment(online: OnlineSamples) -> None:
    deployment = read_deployment_file(online.blue)
    assert deployment.name == "blue"
    assert deployment.endpoint == "my-endpoint"
    assert deployment.kind == "managed"
    assert deployment.code_dir == online.code_dir.resolve()
    assert deployment.script == Path("score.py")
    assert deployment.model == InlineModel(online.model_dir.resolve())
    assert deployment.environment == InlineEnvironment(
        online.conda.resolve(), "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    )
    assert deployment.instances == 1
    assert deployment.request == RequestSettings()
    assert deployment.liveness is None
    assert deployment.readiness is None
    assert deployment.scale is None
    assert deployment.app_insights is False
    assert deployment.collection == {}
    assert deployment.variables == {}
    ignored = [warning for warning in deployment.warnings if "ignored" in warning]
    assert len(ignored) == 1
    assert "instance_type" in ignored[0]
    assert "$schema" not in ignored[0]
    assert len(deployment.warnings) == 1
    # About building the environment here: apart, since `scorehost k8s -f` builds none.
    [image] = deployment.environment_warnings
    assert "environment.image" in image
    assert "openmpi4.1.0-ubuntu22.04" in image


def test_paths_are_relative_to_the_yaml_folder_not_the_working_directory(
    online: OnlineSamples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    relative = Path(os.path.relpath(online.blue, elsewhere))
    deployment = read_deployment_file(relative)
    assert deployment.code_dir == online.code_dir.resolve()
    assert isinstance(deployment.model, InlineModel)
    assert deployment.model.path == online.model_dir.resolve()
    assert deployment.code_dir.is_absolute()


def test_the_azure_kubernetes_sample_deployment(online: OnlineSamples) -> None:
    kubernetes = online.root / "kubernetes"
    from _kubernetes_samples import BLUE

    path = write_file(kubernetes / "kubernetes-blue-deployment.yml", BLUE)
    deployment = read_deployment_file(path)
    assert deployment.kind == "kubernetes"
    assert deployment.code_dir == online.code_dir.resolve()
    assert deployment.request == RequestSettings(request_timeout_ms=3000, max_queue_wait_ms=3000)
    assert deployment.resources == {
        "requests": {"cpu": "0.1", "memory": "0.1Gi"},
        "limits": {"cpu": "0.2", "memory": "200Mi"},
    }
    assert deployment.tags == {"tag1": "deployment-tag1-value"}
    assert deployment.scale == ScaleSettings("default")


def test_the_binary_payloads_sample_needs_its_placeholders_set(online: OnlineSamples) -> None:
    folder = online.root / "managed" / "binary-payloads"
    write_file(folder / "code" / "single-file-to-file-score.py", "def init():\n    pass\n")
    write_file(folder / "code" / "multi-file-to-json-score.py", "def init():\n    pass\n")
    write_file(folder / "env.yml", "name: userenv\ndependencies:\n  - python=3.12\n  - pip\n")
    path = write_file(
        folder / "binary-payloads-deployment.yml",
        """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: binary-payload
endpoint_name: <ENDPOINT_NAME>
model:
  path: .
code_configuration:
  code: code
  scoring_script: <SCORING_SCRIPT>
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
  conda_file: env.yml
instance_type: Standard_DS3_v2
instance_count: 1
""",
    )
    with pytest.raises(ProjectFileError) as caught:
        read_deployment_file(path)
    assert f"{path}, line 3: " in caught.value.message
    assert "'<ENDPOINT_NAME>' is not a valid endpoint name" in caught.value.message
    deployment = read_deployment_file(
        path, ["endpoint_name=endpt-moe-123", "code_configuration.scoring_script=single-file-to-file-score.py"]
    )
    assert deployment.endpoint == "endpt-moe-123"
    assert deployment.script == Path("single-file-to-file-score.py")
    assert deployment.code_dir == (folder / "code").resolve()
    assert deployment.model == InlineModel(folder.resolve())


# -- missing files, with the line of the field that names them ----------------------------------------------------


def test_a_missing_code_folder_is_refused_with_its_line(online: OnlineSamples) -> None:
    message = _refused(online, HEAD.replace("../../model-1/onlinescoring/", "../../model-1/scoring/"))
    assert ", line 4: " in message
    assert "the code folder" in message
    assert str(online.root / "model-1" / "scoring") in message


def test_a_missing_scoring_script_is_refused_with_its_line(online: OnlineSamples) -> None:
    message = _refused(online, HEAD.replace("score.py", "scoring.py"))
    assert ", line 5: " in message
    assert str(online.code_dir.resolve() / "scoring.py") in message
    assert "does not exist" in message


def test_a_code_path_that_is_a_file_is_refused(online: OnlineSamples) -> None:
    message = _refused(online, HEAD.replace("../../model-1/onlinescoring/", "../../model-1/onlinescoring/score.py"))
    assert ", line 4: the code folder" in message


def test_a_scoring_script_that_is_a_folder_is_refused(online: OnlineSamples) -> None:
    (online.code_dir / "pkg").mkdir()
    message = _refused(online, HEAD.replace("score.py", "pkg"))
    assert ", line 5: " in message


def test_a_missing_model_path_is_refused_with_its_line(online: OnlineSamples) -> None:
    message = _refused(online, HEAD + "model:\n  path: ../../model-9/model/\n")
    assert ", line 7: " in message
    assert "the model path" in message
    assert str(online.root / "model-9" / "model") in message


def test_a_missing_conda_file_is_refused_with_its_line(online: OnlineSamples) -> None:
    message = _refused(online, HEAD + "environment:\n  image: mcr.microsoft.com/x\n  conda_file: conda.yml\n")
    assert ", line 8: " in message
    assert "the conda file" in message
    assert str(online.sample / "conda.yml") in message


def test_an_inline_model_without_path_is_refused(online: OnlineSamples) -> None:
    message = _refused(online, HEAD + "model:\n  name: my-model\n")
    assert ", line 6: " in message
    assert "needs a path" in message


@pytest.mark.parametrize("script", ["../environment/conda.yaml", "/etc/hostname", "sub/../../environment/conda.yaml"])
def test_a_scoring_script_outside_the_code_folder_is_refused(online: OnlineSamples, script: str) -> None:
    message = _refused(online, HEAD.replace("score.py", script))
    assert ", line 5: " in message
    assert "is outside" in message


def test_a_symlinked_script_that_leads_outside_is_refused(online: OnlineSamples) -> None:
    (online.code_dir / "link.py").symlink_to(online.conda)
    assert "is outside" in _refused(online, HEAD.replace("score.py", "link.py"))


def test_a_scoring_script_in_a_subfolder(online: OnlineSamples) -> None:
    write_file(online.code_dir / "src" / "main.py", "def init(): pass\n")
    deployment = _read(online, HEAD.replace("score.py", "src/main.py"))
    assert deployment.script == Path("src/main.py")
    assert deployment.code_dir == online.code_dir.resolve()


def test_no_code_configuration_is_refused(online: OnlineSamples) -> None:
    # Unless the model is an MLflow model (tests/mlflow): this one's folder holds no MLmodel file.
    message = _refused(online, "name: blue\nendpoint_name: my-endpoint\nmodel:\n  path: ../../model-1/model/\n")
    assert "no scoring script" in message
    assert "code_configuration" in message


def test_code_configuration_without_its_script_is_refused(online: OnlineSamples) -> None:
    message = _refused(online, "name: blue\nendpoint_name: my-endpoint\ncode_configuration:\n  code: .\n")
    assert ", line 3: " in message
    assert "no scoring script" in message


def test_the_preview_spelling_code_path_and_scoring_script(online: OnlineSamples) -> None:
    deployment = _read(
        online,
        "name: blue\nendpoint_name: my-endpoint\ncode_path: ../../model-1/onlinescoring\nscoring_script: score.py\n",
    )
    assert deployment.code_dir == online.code_dir.resolve()
    assert deployment.script == Path("score.py")


def test_a_missing_path_from_set_says_set(online: OnlineSamples) -> None:
    message = _refused(online, HEAD, ("code_configuration.scoring_script=missing.py",))
    assert message.startswith("d.yml (--set code_configuration.scoring_script): ")


# -- names -------------------------------------------------------------------------------------------------------


def test_missing_names_are_refused(online: OnlineSamples) -> None:
    body = HEAD.replace("name: blue\n", "", 1)
    assert "has no name" in _refused(online, body)
    assert "has no endpoint_name" in _refused(online, HEAD.replace("endpoint_name: my-endpoint\n", ""))
    assert _read(online, body, ("name=green",)).name == "green"


@pytest.mark.parametrize(("key", "line"), [("name", 1), ("endpoint_name", 2)])
def test_bad_names_are_refused_with_the_line(online: OnlineSamples, key: str, line: int) -> None:
    body = HEAD.replace(f"{key}: ", f"{key}: bad_name_", 1)
    message = _refused(online, body)
    assert f"d.yml, line {line}: " in message
    assert "is not a valid" in message


def test_a_bad_name_from_set_says_set(online: OnlineSamples) -> None:
    message = _refused(online, HEAD, ("name=x",))
    assert message.startswith("d.yml (--set name): ")
    assert "'x' is not a valid deployment name" in message


# -- type --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("type: kubernetes", "kubernetes"),
        ("type: Kubernetes", "kubernetes"),
        ("type: managed", "managed"),
        ("type: Managed", "managed"),
        ("$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json", "kubernetes"),
        ("$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json", "managed"),
        ("description: no type", "managed"),
    ],
)
def test_type(online: OnlineSamples, line: str, kind: str) -> None:
    assert _read(online, HEAD + line + "\n").kind == kind


def test_a_bad_type_is_refused(online: OnlineSamples) -> None:
    message = _refused(online, HEAD + "type: serverless\n")
    assert "d.yml, line 6: " in message
    assert "managed, kubernetes" in message


# -- model and environment references -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("azureml:name:1", AssetReference("name", version="1")),
        ("azureml:my-model:12", AssetReference("my-model", version="12")),
        ("azureml:name@latest", AssetReference("name", label="latest")),
        ("azureml:name@production", AssetReference("name", label="production")),
    ],
)
def test_model_references(online: OnlineSamples, written: str, expected: AssetReference) -> None:
    assert _read(online, HEAD + f"model: {written}\n").model == expected


def test_model_reference_from_set_replaces_the_inline_model(online: OnlineSamples) -> None:
    deployment = read_deployment_file(online.blue, ["model=azureml:m:2"])
    assert deployment.model == AssetReference("m", version="2")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("azureml://registries/azureml/models/sklearn/versions/1", "Azure ML registry"),
        ("azureml://registries/azureml/models/sklearn/labels/latest", "Azure ML registry"),
        ("azureml:name", "has no version"),
        ("name:1", "is not a reference"),
        ("azureml:name@", "is not azureml:NAME@LABEL"),
    ],
)
def test_model_references_that_cannot_be_served_are_refused_clearly(
    online: OnlineSamples, written: str, expected: str
) -> None:
    message = _refused(online, HEAD + f"model: {written}\n")
    assert "d.yml, line 6: " in message
    assert expected in message
    assert written in message


def test_environment_references(online: OnlineSamples) -> None:
    assert _read(online, HEAD + "environment: azureml:my-env:1\n").environment == AssetReference("my-env", "1")
    message = _refused(
        online, HEAD + "environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest\n"
    )
    assert "d.yml, line 6: " in message
    assert "Azure ML registry" in message


def test_inline_model_fields(online: OnlineSamples) -> None:
    deployment = _read(
        online,
        HEAD
        + """\
model:
  name: regression
  version: 3
  description: linear regression
  tags: {framework: sklearn}
  path: ../../model-1/model/sklearn_regression_model.pkl
  type: custom_model
""",
    )
    assert deployment.model == InlineModel(
        online.model_file.resolve(), "regression", "3", "linear regression", {"framework": "sklearn"}
    )


def test_an_image_only_environment_gives_a_warning(online: OnlineSamples) -> None:
    deployment = _read(online, HEAD + "environment:\n  image: mcr.microsoft.com/azureml/minimal-py312-inference\n")
    assert deployment.environment == InlineEnvironment(None, "mcr.microsoft.com/azureml/minimal-py312-inference")
    assert (deployment.warnings, len(deployment.environment_warnings)) == ([], 1)
    assert "mcr.microsoft.com/azureml/minimal-py312-inference" in deployment.environment_warnings[0]
    assert "scorehost's own Python environment" in deployment.environment_warnings[0]


def test_a_conda_file_without_image(online: OnlineSamples) -> None:
    deployment = _read(online, HEAD + "environment:\n  conda_file: ../../model-1/environment/conda.yaml\n")
    assert deployment.environment == InlineEnvironment(online.conda.resolve())
    assert deployment.warnings == []


def test_a_conda_file_written_inline_is_read_as_a_file_would_be(online: OnlineSamples) -> None:
    inline = "environment:\n  conda_file:\n    dependencies: [python=3.11, scikit-learn=1.7.0, {pip: [joblib]}]\n"
    deployment = _read(online, HEAD + inline)
    assert isinstance(deployment.environment, InlineEnvironment)
    written = deployment.environment.conda_file
    assert written is not None
    assert written.stat().st_mode & 0o777 == 0o600
    from scorehost.environments import read_environment_file

    spec = read_environment_file(written)
    assert (spec.python, spec.requirements) == ("3.11", ("scikit-learn==1.7.0.*", "joblib"))
    again = _read(online, HEAD + inline)  # the same mapping, the same file (named by its digest)
    assert isinstance(again.environment, InlineEnvironment)
    assert again.environment.conda_file == written


def test_a_conda_file_that_is_neither_a_path_nor_a_mapping_is_refused_with_its_line(online: OnlineSamples) -> None:
    message = _refused(online, HEAD + "environment:\n  conda_file: [python=3.12]\n")
    assert "d.yml, line 7: environment.conda_file must be a string or a mapping" in message
