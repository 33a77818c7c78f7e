"""A deployment YAML without code_configuration, in process: an MLflow model is served by the built-in scoring
script in the environment its own files declare; any other model still needs a scoring script."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from scorehost.azureml.apply import deployment_request
from scorehost.azureml.deployment import read_deployment_file
from scorehost.cli.models import models_group
from scorehost.errors import ProjectFileError
from scorehost.mlflow import BUILTIN_SCRIPT
from scorehost.registry import Registry

MLMODEL = """\
flavors:
  python_function: {loader_module: mlflow.sklearn, python_version: 3.11.4}
  sklearn: {sklearn_version: 1.5.0}
mlflow_version: 2.14.1
"""


def _mlflow_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text(MLMODEL)
    (folder / "model.pkl").write_bytes(b"pickle")
    (folder / "requirements.txt").write_text("mlflow==2.14.1\nscikit-learn==1.5.0\n")
    return folder


def _yaml(folder: Path, body: str) -> Path:
    path = folder / "deployment.yml"
    path.write_text("name: blue\nendpoint_name: ncd\n" + textwrap.dedent(body))
    return path


def test_an_inline_mlflow_model_gets_the_builtin_script_and_its_own_environment(tmp_path: Path) -> None:
    _mlflow_folder(tmp_path / "model")
    deployment = read_deployment_file(_yaml(tmp_path, "model:\n  path: model\n  type: mlflow_model\n"))
    assert deployment.builtin_script
    assert deployment.code_dir / deployment.script == BUILTIN_SCRIPT
    assert deployment.warnings == []
    request = deployment_request(deployment, tmp_path / "home")
    assert request.fields["script"] == BUILTIN_SCRIPT.name
    assert request.fields["python_environment"]["requirements"] == [
        "mlflow-skinny==2.14.1",
        "scikit-learn==1.5.0",
        "pandas",
    ]
    assert request.fields["python_environment"]["python"] == "3.11"
    with Registry(tmp_path / "home") as registry:
        assert registry.get(request.model or "").properties == {"azureml.model_type": "mlflow_model"}


def test_an_mlmodel_file_without_the_type_is_served_with_a_warning(tmp_path: Path) -> None:
    _mlflow_folder(tmp_path / "model")
    deployment = read_deployment_file(_yaml(tmp_path, "model:\n  path: model\n"))
    assert deployment.builtin_script
    assert any("az ml would ask for model.type: mlflow_model" in line for line in deployment.warnings)


def test_an_mlflow_type_without_an_mlmodel_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(b"pickle")
    with pytest.raises(ProjectFileError, match=r"line 4: .*holds no MLmodel file"):
        read_deployment_file(_yaml(tmp_path, "model:\n  path: model\n  type: mlflow_model\n"))
    with pytest.raises(ProjectFileError, match=r"no scoring script: add code_configuration.*or deploy an MLflow model"):
        read_deployment_file(_yaml(tmp_path, "model:\n  path: model\n"))


def test_a_registered_model_must_be_an_mlflow_model_to_need_no_script(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "model.pkl").write_bytes(b"pickle")
    with Registry(home) as registry:
        registry.register("plain", tmp_path / "plain")
        registry.register("iris", _mlflow_folder(tmp_path / "iris"), properties={"azureml.model_type": "mlflow_model"})
    deployment = read_deployment_file(_yaml(tmp_path, "model: azureml:plain:1\n"))
    with pytest.raises(ProjectFileError, match=r"plain:1 is not an MLflow model \(it holds no MLmodel file\)"):
        deployment_request(deployment, home)
    request = deployment_request(read_deployment_file(_yaml(tmp_path, "model: azureml:iris@latest\n")), home)
    assert request.fields["models"] == ["iris:latest"]
    assert request.fields["python_environment"]["requirements"][0] == "mlflow-skinny==2.14.1"
    assert request.fields["python_environment"]["source"] == "the MLflow model iris:1"


def test_a_scoring_script_keeps_the_model_environment_only_for_a_declared_mlflow_model(tmp_path: Path) -> None:
    _mlflow_folder(tmp_path / "model")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    code = "code_configuration: {code: code, scoring_script: score.py}\n"
    declared = read_deployment_file(_yaml(tmp_path, code + "model: {path: model, type: mlflow_model}\n"))
    assert not declared.builtin_script
    assert declared.script == Path("score.py")
    request = deployment_request(declared, tmp_path / "home")
    assert request.fields["python_environment"]["requirements"][0] == "mlflow-skinny==2.14.1"
    custom = read_deployment_file(_yaml(tmp_path, code + "model: {path: model}\n"))
    assert deployment_request(custom, tmp_path / "home").fields["python_environment"] is None


def test_models_register_type_records_the_property_and_checks_the_folder(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    runner = CliRunner()
    done = runner.invoke(models_group, ["--home", home, "register", "iris", str(_mlflow_folder(tmp_path / "m"))])
    assert done.exit_code == 0, done.output
    typed = ["--home", home, "register", "iris", str(tmp_path / "m"), "--type", "mlflow_model"]
    assert runner.invoke(models_group, typed).exit_code == 0
    with Registry(tmp_path / "home") as registry:
        assert registry.get("iris:1").properties == {}
        assert registry.get("iris:2").properties == {"azureml.model_type": "mlflow_model"}
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "model.pkl").write_bytes(b"x")
    refused = runner.invoke(
        models_group, ["--home", home, "register", "x", str(tmp_path / "plain"), "--type", "mlflow_model"]
    )
    assert refused.exit_code == 2
    assert "holds no MLmodel file" in refused.output


def test_deployments_create_model_without_script_takes_the_builtin_one(tmp_path: Path) -> None:
    import click

    from scorehost.cli.deployments import _flag_fields

    home = tmp_path / "home"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "model.pkl").write_bytes(b"pickle")
    with Registry(home) as registry:
        registry.register("iris", _mlflow_folder(tmp_path / "iris"))
        registry.register("plain", tmp_path / "plain")
    fields = _flag_fields(None, None, ("iris",), None, (), None, False, None, creating=True, home=home)
    assert Path(fields["code_dir"]) / fields["script"] == BUILTIN_SCRIPT
    assert fields["python_environment"]["requirements"][0] == "mlflow-skinny==2.14.1"
    with pytest.raises(click.UsageError, match=r"give --script .*or --model with an MLflow model"):
        _flag_fields(None, None, ("plain",), None, (), None, False, None, creating=True, home=home)
