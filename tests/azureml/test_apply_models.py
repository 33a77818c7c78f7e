"""deployment_request in a real workspace: inline models registered content-addressed (once), references checked
against the registry, Azure ML's request settings and probes turned into serve options, Azure-only fields kept.

No environment here: the environments module that turns conda files into specifications is another module's work.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _azureml_samples import OnlineSamples, write_file

from scorehost.azureml.apply import DeploymentRequest, deployment_request
from scorehost.azureml.deployment import read_deployment_file
from scorehost.errors import ProjectFileError
from scorehost.registry import Registry

# blue-deployment.yml without its environment.
BLUE = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../../model-1/model/
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
instance_type: Standard_DS3_v2
instance_count: 1
"""

CODE = """\
name: blue
endpoint_name: my-endpoint
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


def _request(
    online: OnlineSamples, home: Path, body: str, name: str = "d.yml", overrides: tuple[str, ...] = ()
) -> DeploymentRequest:
    return deployment_request(read_deployment_file(online.write(name, body), overrides), home)


def _files(home: Path, ref: str) -> list[str]:
    with Registry(home) as registry:
        return [stored.path for stored in registry.files(ref)]


def _versions(home: Path) -> list[str]:
    with Registry(home) as registry:
        return [f"{version.name}:{version.version}" for version in registry.list_versions()]


def _register(home: Path, name: str, path: Path) -> str:
    with Registry(home) as registry:
        version = registry.register(name, path)
    return f"{version.name}:{version.version}"


# -- inline models ---------------------------------------------------------------------------------------------------


def test_an_inline_model_is_registered_once(online: OnlineSamples, home: Path) -> None:
    first = _request(online, home, BLUE)
    second = _request(online, home, BLUE)
    assert first.model is not None
    assert re.fullmatch(r"[0-9a-f]{32}:1", first.model)  # Azure ML's anonymous models: a content hash, version 1
    assert second.model == first.model
    assert first.fields["models"] == [first.model]
    assert _versions(home) == [first.model]


def test_the_registered_folder_keeps_its_own_name(online: OnlineSamples, home: Path) -> None:
    request = _request(online, home, BLUE)
    assert request.model is not None
    assert _files(home, request.model) == ["model/sklearn_regression_model.pkl"]
    with Registry(home) as registry:
        version = registry.get(request.model)
        assert (version.kind, version.root) == ("folder", "model")
        assert registry.files(request.model)[0].size == online.model_file.stat().st_size


def test_a_nested_model_folder_keeps_its_structure(online: OnlineSamples, home: Path) -> None:
    models = online.root / "multi-models-sample" / "models"
    write_file(models / "model_1" / "v1" / "sample_m1.pkl", b"m1")
    write_file(models / "model_2" / "v1" / "sample_m2.pkl", b"m2")
    request = _request(online, home, CODE + "model:\n  path: ../../multi-models-sample/models/\n")
    assert request.model is not None
    assert _files(home, request.model) == ["models/model_1/v1/sample_m1.pkl", "models/model_2/v1/sample_m2.pkl"]


def test_a_single_file_model_keeps_the_file_directly(online: OnlineSamples, home: Path) -> None:
    request = _request(online, home, CODE + "model:\n  path: ../../model-1/model/sklearn_regression_model.pkl\n")
    assert request.model is not None
    assert _files(home, request.model) == ["sklearn_regression_model.pkl"]
    with Registry(home) as registry:
        assert registry.get(request.model).kind == "file"


def test_the_same_files_from_another_folder_are_the_same_model(online: OnlineSamples, home: Path) -> None:
    # model-2's pickle is byte-identical to model-1's, under a folder also called `model`.
    write_file(online.root / "model-2" / "model" / "sklearn_regression_model.pkl", online.model_file.read_bytes())
    blue = _request(online, home, BLUE, "blue.yml")
    green = _request(
        online, home, BLUE.replace("name: blue", "name: green").replace("model-1/model", "model-2/model"), "green.yml"
    )
    assert green.model == blue.model
    assert len(_versions(home)) == 1


def test_different_files_are_a_different_model(online: OnlineSamples, home: Path) -> None:
    first = _request(online, home, BLUE)
    online.model_file.write_bytes(b"retrained")
    second = _request(online, home, BLUE)
    assert second.model != first.model
    assert {first.model, second.model} == set(_versions(home))


def test_a_renamed_folder_is_a_different_model(online: OnlineSamples, home: Path) -> None:
    # The folder name is part of the layout under AZUREML_MODEL_DIR, so it is part of the content.
    first = _request(online, home, BLUE)
    write_file(online.root / "model-1" / "weights" / "sklearn_regression_model.pkl", online.model_file.read_bytes())
    second = _request(online, home, BLUE.replace("model-1/model/", "model-1/weights/"))
    assert second.model != first.model
    assert second.model is not None
    assert _files(home, second.model) == ["weights/sklearn_regression_model.pkl"]


def test_an_inline_model_with_a_name_uses_that_name(online: OnlineSamples, home: Path) -> None:
    body = (
        CODE + "model:\n  name: regression\n  description: linear\n  tags: {team: ml}\n  path: ../../model-1/model/\n"
    )
    first = _request(online, home, body)
    assert first.model == "regression:1"
    assert _request(online, home, body).model == "regression:1"
    with Registry(home) as registry:
        version = registry.get("regression:1")
        assert version.description == "linear"
        assert dict(version.tags) == {"team": "ml"}
    online.model_file.write_bytes(b"retrained")
    assert _request(online, home, body).model == "regression:2"
    assert _files(home, "regression:2") == ["model/sklearn_regression_model.pkl"]


def test_an_empty_model_folder_is_a_project_file_error(online: OnlineSamples, home: Path) -> None:
    (online.root / "empty").mkdir()
    with pytest.raises(ProjectFileError) as caught:
        _request(online, home, CODE + "model:\n  path: ../../empty\n")
    assert "d.yml, line 6: " in caught.value.message
    assert "no files" in caught.value.message
    assert _versions(home) == []


# -- references ----------------------------------------------------------------------------------------------------


def test_a_missing_registered_model_is_a_project_file_error(online: OnlineSamples, home: Path) -> None:
    with pytest.raises(ProjectFileError) as caught:
        _request(online, home, CODE + "model: azureml:missing:1\n")
    message = caught.value.message
    assert "d.yml, line 6: " in message
    assert "missing" in message


def test_a_missing_version_of_a_registered_model_is_a_project_file_error(online: OnlineSamples, home: Path) -> None:
    _register(home, "regression", online.model_dir)
    with pytest.raises(ProjectFileError) as caught:
        _request(online, home, CODE + "model: azureml:regression:2\n")
    assert "d.yml, line 6: " in caught.value.message
    assert "regression" in caught.value.message


@pytest.mark.parametrize(
    ("written", "served"),
    [("azureml:regression:1", "regression:1"), ("azureml:regression@latest", "regression:latest")],
)
def test_a_registered_model_reference(online: OnlineSamples, home: Path, written: str, served: str) -> None:
    assert _register(home, "regression", online.model_dir) == "regression:1"
    request = _request(online, home, CODE + f"model: {written}\n")
    assert request.model == served
    assert request.fields["models"] == [served]
    assert request.fields["azureml"]["model"] == written
    assert _versions(home) == ["regression:1"]  # nothing new registered


def test_a_reference_from_set(online: OnlineSamples, home: Path) -> None:
    _register(home, "regression", online.model_dir)
    request = _request(online, home, BLUE, overrides=("model=azureml:regression:1",))
    assert request.model == "regression:1"
    assert _versions(home) == ["regression:1"]


def test_no_model(online: OnlineSamples, home: Path) -> None:
    request = _request(online, home, CODE)
    assert request.model is None
    assert request.fields["models"] == []


# -- the control plane's fields ------------------------------------------------------------------------------------


def test_the_fields_of_the_sample_without_environment(online: OnlineSamples, home: Path) -> None:
    request = _request(online, home, BLUE + "environment_variables:\n  WORKERS: 2\ndescription: blue\ntags: {a: 1}\n")
    assert (request.endpoint, request.name) == ("my-endpoint", "blue")
    fields = request.fields
    assert fields["script"] == "score.py"
    assert fields["code_dir"] == str(online.code_dir.resolve())
    assert fields["instances"] == 1
    assert fields["environment"] == {"WORKERS": "2"}
    assert fields["description"] == "blue"
    assert fields["tags"] == {"a": "1"}
    assert fields["python_environment"] is None
    assert fields["serve_options"] == {}
    assert fields["azureml"] == {"type": "managed", "app_insights_enabled": False}
    assert len(request.warnings) == 1
    assert "instance_type" in request.warnings[0]


def test_request_timeout_becomes_the_serve_timeout(online: OnlineSamples, home: Path) -> None:
    request = _request(online, home, BLUE + "request_settings:\n  request_timeout_ms: 3000\n")
    assert request.fields["serve_options"]["timeout"] == 3.0
    request = _request(online, home, BLUE, overrides=("request_settings.request_timeout_ms=1500",))
    assert request.fields["serve_options"]["timeout"] == 1.5
    assert request.fields["azureml"]["request_settings"] == {"request_timeout_ms": 1500}


def test_readiness_probe_becomes_the_init_timeout(online: OnlineSamples, home: Path) -> None:
    request = _request(
        online, home, BLUE + "readiness_probe:\n  initial_delay: 5\n  period: 2\n  failure_threshold: 10\n"
    )
    assert request.fields["serve_options"]["init_timeout"] == 5 + 2 * 10
    request = _request(online, home, BLUE + "readiness_probe:\n  timeout: 3\n")
    assert request.fields["serve_options"]["init_timeout"] == 10 + 10 * 30  # Azure's defaults


def test_liveness_probe_becomes_the_heartbeat_timeout(online: OnlineSamples, home: Path) -> None:
    request = _request(online, home, BLUE + "liveness_probe:\n  period: 5\n  failure_threshold: 3\n  timeout: 4\n")
    assert request.fields["serve_options"]["heartbeat_timeout"] == 5 * 3 + 4


def test_azure_settings_are_kept(online: OnlineSamples, home: Path) -> None:
    collector = (
        "data_collector:\n"
        "  collections:\n"
        "    model_inputs: {enabled: 'True', data: {name: inputs, version: 1}}\n"
        "  sampling_rate: 0.5\n"
        "  request_logging: {capture_headers: [x-request-id]}\n"
    )
    request = _request(online, home, BLUE + collector + "app_insights_enabled: true\nproperties: {owner: ml}\n")
    kept = request.fields["azureml"]
    assert kept["type"] == "managed"
    assert kept["data_collector"] == {
        "collections": {"model_inputs": {"enabled": "True", "data": {"name": "inputs", "version": 1}}},
        "sampling_rate": 0.5,
        "request_logging": {"capture_headers": ["x-request-id"]},
    }
    assert kept["app_insights_enabled"] is True
    assert kept["properties"] == {"owner": "ml"}
    assert "model" not in kept  # an inline model is registered, not kept as text


def test_target_utilization_runs_min_instances_with_a_warning(online: OnlineSamples, home: Path) -> None:
    body = BLUE + (
        "scale_settings:\n  type: target_utilization\n  min_instances: 2\n  max_instances: 5\n"
        "  target_utilization_percentage: 70\n"
    )
    request = _request(online, home, body)
    assert request.fields["instances"] == 2
    assert request.fields["azureml"]["scale_settings"]["max_instances"] == 5
    assert any("target_utilization" in warning for warning in request.warnings)
