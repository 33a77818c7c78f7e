"""MLflow models without a script, in process: the MLmodel file, the request forms Azure ML's MLflow images take,
the signature's checks (what a 400 says), the prediction's encoding and the model's environment."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scorehost.errors import InvalidModelReference
from scorehost.mlflow import (
    ColumnSpec,
    ParamSpec,
    Signature,
    TensorSpec,
    find_mlmodel_folder,
    find_mlmodel_path,
    read_mlmodel,
)
from scorehost.mlflow.environment import serving_requirements
from scorehost.mlflow.payloads import InputMismatch, jsonable, model_input, model_params
from scorehost.mlflow.schema_types import input_type, output_type, params_type

IRIS = Signature(
    inputs=tuple(ColumnSpec("double", name) for name in ("a", "b", "c", "d")),
    outputs=(TensorSpec("int64", (-1,)),),
)
MLMODEL = """\
flavors:
  python_function:
    loader_module: mlflow.sklearn
    python_version: 3.10.12
  sklearn:
    sklearn_version: 1.5.0
mlflow_version: 2.14.1
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}, {"type": "long", "name": "n", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: '[{"name": "top_k", "type": "long", "default": 5, "shape": null}]'
"""


def _model_folder(root: Path, mlmodel: str = MLMODEL, example: Any = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLmodel").write_text(mlmodel)
    example = {"columns": ["a", "n"], "data": [[0.5, 1], [1.5, 2]]} if example is None else example
    (root / "input_example.json").write_text(json.dumps(example))
    return root


# --- the MLmodel file ------------------------------------------------------------------------------------------


def test_mlmodel_gives_flavors_signature_params_and_example(tmp_path: Path) -> None:
    model = read_mlmodel(_model_folder(tmp_path / "model"))
    assert list(model.flavors) == ["python_function", "sklearn"]
    assert model.python_version == "3.10.12"
    assert model.signature is not None
    assert model.signature.inputs == (ColumnSpec("double", "a"), ColumnSpec("long", "n", required=False))
    assert model.signature.outputs == (TensorSpec("int64", (-1,)),)
    assert [(p.name, p.type, p.default) for p in model.signature.params] == [("top_k", "long", 5)]
    assert model.read_input_example() == ({"columns": ["a", "n"], "data": [[0.5, 1], [1.5, 2]]}, None)
    assert "saved with MLflow 2.14.1" in model.describe()


def test_an_ndarray_example_from_mlflow_1_is_unwrapped(tmp_path: Path) -> None:
    mlmodel = "flavors: {}\nsaved_input_example_info: {artifact_path: input_example.json, type: ndarray}\n"
    model = read_mlmodel(_model_folder(tmp_path / "model", mlmodel, {"inputs": [[1, 2]]}))
    assert model.read_input_example() == ([[1, 2]], None)
    assert model.signature is None


def test_an_unreadable_signature_names_the_file(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "model", "flavors: {}\nsignature:\n  inputs: 'not json'\n")
    with pytest.raises(InvalidModelReference, match=r"MLmodel: its signature cannot be read"):
        read_mlmodel(folder)


def test_the_model_folder_is_found_below_azureml_model_dir(tmp_path: Path) -> None:
    version = tmp_path / "models" / "iris" / "1"
    _model_folder(version / "model")
    (version / "other").mkdir()
    assert find_mlmodel_folder(version) == version / "model"
    assert find_mlmodel_folder(version / "model") == version / "model"
    assert find_mlmodel_folder(version, environ_folder="model") == version / "model"
    assert find_mlmodel_folder(version, environ_folder="other") is None
    assert find_mlmodel_folder(version / "other") is None
    _model_folder(version / "second")
    with pytest.raises(InvalidModelReference, match=r"several MLflow models \(model, second\)"):
        find_mlmodel_folder(version)


def test_the_model_folder_is_found_among_registered_paths() -> None:
    assert find_mlmodel_path(["model/MLmodel", "model/model.pkl", "model/sub/x/MLmodel"]) == "model"
    assert find_mlmodel_path(["MLmodel", "model.pkl"]) == ""
    assert find_mlmodel_path(["model.pkl"]) is None
    with pytest.raises(InvalidModelReference):
        find_mlmodel_path(["a/MLmodel", "b/MLmodel"])


# --- request forms ---------------------------------------------------------------------------------------------


def test_split_rows_records_and_columns_give_the_same_frame() -> None:
    rows = [[1, 2.5, 3, 4], [5, 6, 7, 8.5]]
    expected = pd.DataFrame(rows, columns=list("abcd"), dtype="float64")
    forms = [
        {"columns": list("abcd"), "index": [0, 1], "data": rows},
        {"columns": list("abcd"), "data": rows},
        rows,
        [dict(zip("abcd", row, strict=True)) for row in rows],
        {name: [row[i] for row in rows] for i, name in enumerate("abcd")},
        json.dumps(rows),
    ]
    for form in forms:
        frame = model_input(form, IRIS)
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected)


def test_one_row_of_named_scalars_is_one_row() -> None:
    frame = model_input({"a": 1, "b": 2, "c": 3, "d": 4}, IRIS)
    assert frame.shape == (1, 4)
    assert frame.dtypes.tolist() == [np.dtype("float64")] * 4


def test_without_a_signature_rows_are_an_array_and_a_mapping_named_tensors() -> None:
    array = model_input([[1, 2], [3, 4]], None)
    assert isinstance(array, np.ndarray)
    assert array.shape == (2, 2)
    tensors = model_input({"x": [1, 2], "y": [[1.0], [2.0]]}, None)
    assert set(tensors) == {"x", "y"}
    assert tensors["y"].shape == (2, 1)


def test_a_tensor_signature_converts_and_checks_the_shape() -> None:
    signature = Signature(inputs=(TensorSpec("float32", (-1, 2)),))
    array = model_input([[1, 2], [3, 4]], signature)
    assert array.dtype == np.float32
    with pytest.raises(InputMismatch, match=r"has shape \(1, 3\); the model's signature takes \(-1, 2\)"):
        model_input([[1, 2, 3]], signature)
    with pytest.raises(InputMismatch, match=r"must hold float32 values.*it holds text"):
        model_input([["x", "y"]], signature)
    with pytest.raises(InputMismatch, match=r"rows must be of one length"):
        model_input([[1, 2], [3]], signature)


def test_named_tensors_name_the_missing_one() -> None:
    signature = Signature(inputs=(TensorSpec("int64", (-1,), "ids"), TensorSpec("float64", (-1, 2), "x")))
    tensors = model_input({"ids": [1, 2], "x": [[1, 2], [3, 4]]}, signature)
    assert tensors["ids"].dtype == np.int64
    assert tensors["x"].dtype == np.float64
    with pytest.raises(InputMismatch, match=r"tensor 'x' is missing"):
        model_input({"ids": [1]}, signature)
    with pytest.raises(InputMismatch, match=r"input_data.ids must hold whole numbers"):
        model_input({"ids": [1.5], "x": [[1, 2]]}, signature)


# --- the signature's 400s --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1], "b": [2], "c": [3], "e": [4]}, r"column 'd' is missing; .*a \(double\).*Columns sent: a, b, c, e"),
        ([[1, 2, "x", 4]], r"column 'c' must hold double values \(a number\).*it holds text \(\"x\"\) \(row 0\)"),
        ([[1, 2, True, 4]], r"column 'c' must hold double values.*it holds a boolean"),
        ([[1, 2, 3]], r"row 0 holds 3 values; the model's signature takes 4 columns, in this order: a \(double\)"),
        ({"columns": ["a"], "data": [[1, 2]]}, r"data row 0 holds 2 values, for 1 columns"),
        ([], r"holds no rows"),
        (7, r"is a JSON number, which no model input is"),
        ("not json", r"is text that is not JSON"),
        ({"a": [1, 2], "b": [1], "c": [1], "d": [1]}, r"the columns must hold as many values each"),
    ],
)
def test_what_does_not_fit_the_signature_says_what_and_where(value: Any, message: str) -> None:
    with pytest.raises(InputMismatch, match=message):
        model_input(value, IRIS)


def test_whole_number_columns_take_integral_floats_only() -> None:
    signature = Signature(inputs=(ColumnSpec("long", "n"), ColumnSpec("string", "s"), ColumnSpec("boolean", "f")))
    frame = model_input([[1.0, "x", True]], signature)
    assert frame["n"].dtype == np.int64
    with pytest.raises(InputMismatch, match=r"column 'n' must hold long values \(a whole number\).*1.5"):
        model_input([[1.5, "x", True]], signature)
    with pytest.raises(InputMismatch, match=r"column 'n' \(long, whole numbers\) holds null"):
        model_input([[None, "x", True], [2, "y", False]], signature)
    with pytest.raises(InputMismatch, match=r"column 's' must hold string values \(text\).*a number \(3\)"):
        model_input([[1, 3, True]], signature)
    with pytest.raises(InputMismatch, match=r"column 'f' must hold boolean values"):
        model_input([[1, "x", "yes"]], signature)


def test_params_are_converted_to_their_declared_types() -> None:
    specs = [
        ParamSpec("top_k", "long", 5),
        ParamSpec("temperature", "double", 0.5),
        ParamSpec("stops", "string", None, (-1,)),
    ]
    assert model_params(None, specs) is None
    assert model_params({"top_k": 3.0, "temperature": 1, "stops": ["a"], "other": "kept"}, specs) == {
        "top_k": 3,
        "temperature": 1.0,
        "stops": ["a"],
        "other": "kept",
    }
    with pytest.raises(InputMismatch, match=r"params.top_k must be a whole number \(long, default 5\), not text"):
        model_params({"top_k": "three"}, specs)
    with pytest.raises(InputMismatch, match=r"params.stops must be an array of string values"):
        model_params({"stops": "a"}, specs)
    with pytest.raises(InputMismatch, match=r"params must be a JSON object of the model's parameters \(top_k \(long\)"):
        model_params([1], specs)


def test_predictions_are_sent_as_azure_sends_them() -> None:
    assert jsonable(np.array([1, 2])) == [1, 2]
    assert jsonable(pd.DataFrame({"p": [0.5, 0.25]})) == [{"p": 0.5}, {"p": 0.25}]
    assert jsonable(pd.Series([1, 2], name="label")) == [{"label": 1}, {"label": 2}]
    assert jsonable({"a": np.array([[1.0]])}) == {"a": [[1.0]]}
    assert jsonable(["text"]) == ["text"]


# --- Swagger samples and the environment -----------------------------------------------------------------------


def test_the_input_example_describes_input_data_in_the_split_form(tmp_path: Path) -> None:
    model = read_mlmodel(_model_folder(tmp_path / "model"))
    swagger = input_type(model).input_to_swagger()
    assert swagger["example"] == {"columns": ["a", "n"], "index": [0, 1], "data": [[0.5, 1], [1.5, 2]]}
    assert swagger["format"] == "pandas.DataFrame:split"
    assert params_type(model).input_to_swagger()["example"] == {"top_k": 5}
    assert output_type(model).input_to_swagger()["example"] == [0]
    # The decorators' conversion is the payload's, a failure a ValueError whose text the 400 carries.
    with pytest.raises(ValueError, match=r"column 'a' is missing"):
        input_type(model).deserialize_input([{"n": 1}])


def test_without_an_example_the_signature_gives_a_sample_row(tmp_path: Path) -> None:
    mlmodel = MLMODEL.split("saved_input_example_info")[0] + "signature:" + MLMODEL.split("signature:")[1]
    model = read_mlmodel(_model_folder(tmp_path / "model", mlmodel))
    assert input_type(model).input_to_swagger()["example"] == {"columns": ["a", "n"], "index": [0], "data": [[0.0, 0]]}


def test_mlflow_is_served_by_mlflow_skinny_and_pandas_is_added() -> None:
    assert serving_requirements(["mlflow==2.14.1", "scikit-learn==1.5.0"]) == (
        "mlflow-skinny==2.14.1",
        "scikit-learn==1.5.0",
        "pandas",
    )
    assert serving_requirements(["mlflow-skinny>=2", "pandas<3"]) == ("mlflow-skinny>=2", "pandas<3")
    assert serving_requirements([]) == ("mlflow-skinny", "pandas")


def test_the_environment_comes_from_the_model_files(tmp_path: Path) -> None:
    from scorehost.mlflow import environment_of_model

    folder = _model_folder(tmp_path / "model")
    (folder / "requirements.txt").write_text("mlflow==2.14.1\ncloudpickle==3.0.0\nscikit-learn==1.5.0\n")
    (folder / "python_env.yaml").write_text(
        "python: 3.10.12\nbuild_dependencies: [pip]\ndependencies: [-r requirements.txt]\n"
    )
    warnings: list[str] = []
    spec = environment_of_model(folder, warnings=warnings)
    assert spec["requirements"] == ["mlflow-skinny==2.14.1", "cloudpickle==3.0.0", "scikit-learn==1.5.0", "pandas"]
    assert spec["python"] >= "3.11"  # 3.10 is below scorehost's runtime: the nearest, said in a warning
    assert any("saved with Python 3.10" in line for line in warnings)
    conda = textwrap.dedent(
        """\
        channels: [conda-forge]
        dependencies:
          - python=3.11.7
          - pip<=24.0
          - pip:
            - mlflow==2.14.1
            - scikit-learn==1.5.0
        """
    )
    (folder / "requirements.txt").unlink()
    (folder / "python_env.yaml").unlink()
    (folder / "conda.yaml").write_text(conda)
    spec = environment_of_model(folder, warnings=[])
    assert spec["requirements"] == ["mlflow-skinny==2.14.1", "scikit-learn==1.5.0", "pandas"]
    assert spec["python"] == "3.11"
