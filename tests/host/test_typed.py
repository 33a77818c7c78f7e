"""TypedRun: inference-schema decorated run() functions from the typed_*.py fixtures, converted as the decorators do."""

from __future__ import annotations

import datetime
import importlib.util
import inspect
import itertools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from scorehost.errors import BadSchema, InvalidParameter, MissingParameter
from scorehost.host.typed import TypedRun, explain_schema_failure, forget_registered_schemas, read_schema

SCRIPTS = Path(__file__).parents[1] / "scripts"
REFERENCE_DOCS = Path(__file__).parents[1] / "data" / "swagger"
_loads = itertools.count()


def load(script: str | Path) -> ModuleType:
    """Import a fixture under a name of its own: inference-schema keys its registry by `module.run`."""
    path = script if isinstance(script, Path) else SCRIPTS / script
    spec = importlib.util.spec_from_file_location(f"{path.stem}_host_test_{next(_loads)}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def typed(script: str) -> tuple[TypedRun, ModuleType]:
    module = load(script)
    module.init()
    run = TypedRun.detect(module.run, SCRIPTS / script)
    assert run is not None
    return run, module


# --- detection ----------------------------------------------------------------------------------------


def test_undecorated_run_is_not_typed() -> None:
    assert TypedRun.detect(load("echo.py").run, SCRIPTS / "echo.py") is None


@pytest.mark.parametrize(
    ("script", "parameters"),
    [
        ("typed_sklearn_numpy.py", ("data",)),
        ("typed_power_bi.py", ("Inputs", "GlobalParameters")),
        ("typed_defaults.py", ("data", "limit", "label")),
        ("typed_request_headers.py", ("data",)),
    ],
)
def test_parameters_in_signature_order_without_request_headers(script: str, parameters: tuple[str, ...]) -> None:
    run, _ = typed(script)
    assert run.parameters == parameters
    assert run.wants_headers == (script == "typed_request_headers.py")


def test_output_schema_alone_is_typed_as_on_the_reference() -> None:
    mode = (REFERENCE_DOCS / "typed_output_only" / "mode.txt").read_text(encoding="utf-8")
    assert mode.startswith(
        "run() is decorated with @input_schema. Server will invoke it with the following arguments: data"
    )
    run, _ = typed("typed_output_only.py")
    assert run.parameters == ("data",)
    assert run.build_kwargs({"data": [1, "x"]}) == {"data": [1, "x"]}  # nothing to convert it with


def test_call_skips_the_decorators() -> None:
    run, module = typed("typed_sklearn_numpy.py")
    assert run.schema.target is inspect.unwrap(module.run)
    assert run.call({"data": np.array([[3.0, 1.0]])}) == [1]


# --- conversion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "payload"),
    [
        ("typed_sklearn_numpy.py", {"data": [[1, 2], [-1.0, -0.5], [0.5, -3.0]]}),
        ("typed_pandas_records.py", {"frame": [{"age": 40, "income": 50000, "city": "Kyiv"}]}),
        (
            "typed_nested_standard.py",
            {"request": {"name": "n", "readings": [[1, 2, 6]], "window": {"size": 2, "scale": 2.0}, "tags": ["a"]}},
        ),
        ("typed_power_bi.py", {"Inputs": {"input1": [{"x": 1, "y": 2.5}]}, "GlobalParameters": 2}),
        ("typed_defaults.py", {"data": [5, 6, 7], "limit": 2}),
        ("typed_unconverted.py", {"data": [[1.0, 2.0]]}),
    ],
)
def test_same_result_as_the_decorators_themselves(
    script: str, payload: dict[str, object], make_payload: Callable[[dict[str, object]], dict[str, object]]
) -> None:
    run, module = typed(script)
    # The decorators mutate what they convert, so each path gets its own copy of the JSON.
    assert run.call(run.build_kwargs(make_payload(payload))) == module.run(**make_payload(payload))


@pytest.fixture
def make_payload() -> Callable[[dict[str, object]], dict[str, object]]:
    import json

    return lambda payload: json.loads(json.dumps(payload))


def test_numpy_parameter_gets_the_sample_dtype() -> None:
    run, _ = typed("typed_sklearn_numpy.py")
    data = run.build_kwargs({"data": [[1, 2]]})["data"]
    assert isinstance(data, np.ndarray)
    assert data.dtype == np.float64


def test_pandas_parameter_gets_a_dataframe_with_the_sample_dtypes() -> None:
    run, _ = typed("typed_pandas_records.py")
    frame = run.build_kwargs({"frame": [{"age": 40, "income": 50000, "city": "Kyiv"}]})["frame"]
    assert isinstance(frame, pd.DataFrame)
    assert str(frame["income"].dtype) == "float64"


def test_power_bi_inputs_hold_a_dataframe() -> None:
    run, _ = typed("typed_power_bi.py")
    kwargs = run.build_kwargs({"Inputs": {"input1": [{"x": 1.0, "y": 2.0}]}, "GlobalParameters": 2})
    inputs = kwargs["Inputs"]
    assert isinstance(inputs, dict)
    assert isinstance(inputs["input1"], pd.DataFrame)
    assert kwargs["GlobalParameters"] == 2  # an int where the sample is a float is kept, as the decorators do
    assert run.call(kwargs) == {"Results": [6.0]}


def test_missing_parameter_without_default() -> None:
    run, _ = typed("typed_power_bi.py")
    with pytest.raises(MissingParameter) as caught:
        run.build_kwargs({"Inputs": {"input1": [{"x": 1.0, "y": 2.0}]}})
    assert caught.value.message == "A value is not provided for the 'GlobalParameters' parameter."
    assert caught.value.status_code == 400


def test_missing_parameters_get_their_defaults_unconverted() -> None:
    run, _ = typed("typed_defaults.py")
    assert run.build_kwargs({"data": [1]}) == {"data": [1], "limit": 10, "label": "items"}


@pytest.mark.parametrize("falsy", [0, None, "", []])
def test_optional_parameter_is_not_converted_when_falsy(falsy: object) -> None:
    run, _ = typed("typed_defaults.py")
    assert run.build_kwargs({"data": [1], "limit": falsy})["limit"] == falsy


def test_optional_parameter_is_converted_when_given() -> None:
    run, _ = typed("typed_defaults.py")
    with pytest.raises(InvalidParameter, match=r"'limit' parameter is not valid: Invalid input data type"):
        run.build_kwargs({"data": [1], "limit": "ten"})


def test_convert_to_provided_type_false_passes_the_json_value() -> None:
    run, _ = typed("typed_unconverted.py")
    assert run.build_kwargs({"data": "anything"}) == {"data": "anything"}


def test_extra_keys_are_ignored_and_request_headers_never_come_from_the_body() -> None:
    run, _ = typed("typed_request_headers.py")
    kwargs = run.build_kwargs({"data": [1.0, 2.5], "request_headers": {"X-Custom": "forged"}, "other": 1})
    assert kwargs == {"data": [1.0, 2.5]}
    assert run.call({**kwargs, "request_headers": {"X-Custom": "sent"}}) == {"total": 3.5, "custom": "sent"}


def test_date_sample_converts_iso_dates_where_inference_schema_cannot() -> None:
    run, module = typed("typed_date_sample.py")
    kwargs = run.build_kwargs({"day": "2024-02-29"})
    assert kwargs == {"day": datetime.date(2024, 2, 29)}
    assert run.call(kwargs) == {"weekday": "Thursday"}
    with pytest.raises(AttributeError, match="strptime"):  # inference-schema 1.8's own conversion
        module.run(day="2024-02-29")
    with pytest.raises(InvalidParameter, match=r"'day' parameter is not valid: .*does not match format"):
        run.build_kwargs({"day": "29/02/2024"})


@pytest.mark.parametrize(
    ("script", "payload", "message"),
    [
        (
            "typed_sklearn_numpy.py",
            {"data": [[1.0, 2.0, 3.0]]},
            "The value of the 'data' parameter is not valid: Invalid input array: array has size 3 on dimension #1, "
            "while expected value is 2",
        ),
        (
            "typed_sklearn_numpy.py",
            {"data": {"a": 1}},
            "The value of the 'data' parameter is not valid: Invalid input format: expected an array of items.",
        ),
        (
            "typed_sklearn_numpy.py",
            {"data": [["a", "b"]]},
            "The value of the 'data' parameter is not valid: could not convert string to float: 'a'",
        ),
        (
            "typed_pandas_records.py",
            {"frame": "age=3"},
            "The value of the 'frame' parameter is not valid: Error, unable to convert input of type <class 'str'> "
            "into Pandas Dataframe",
        ),
        (
            "typed_nested_standard.py",
            {"request": {"name": "n", "readings": [[1, 2, 3]], "window": [3], "tags": []}},
            "The value of the 'request' parameter is not valid: request.window: expected a JSON object, got array",
        ),
        (
            "typed_nested_standard.py",
            {"request": {"name": "n", "readings": [[1, 2, 3]], "window": {}, "tags": ["a", 7]}},
            "The value of the 'request' parameter is not valid: request.tags[1]: Invalid input data type to parse. "
            "Expected: <class 'str'> but got <class 'int'>",
        ),
        (
            "typed_power_bi.py",
            {"Inputs": {"input1": 5}, "GlobalParameters": 1.0},
            "The value of the 'Inputs' parameter is not valid: Inputs.input1: Error, unable to convert input of "
            "type <class 'int'> into Pandas Dataframe",
        ),
        (
            "typed_power_bi.py",
            {"Inputs": {"input1": [{"x": 1.0, "y": 2.0}]}, "GlobalParameters": None},
            "The value of the 'GlobalParameters' parameter is not valid: Invalid input data type to parse. "
            "Expected: <class 'float'> but got <class 'NoneType'>",
        ),
    ],
)
def test_values_the_decorators_cannot_convert_name_the_parameter_and_reason(
    script: str, payload: dict[str, object], message: str
) -> None:
    run, _ = typed(script)
    with pytest.raises(InvalidParameter) as caught:
        run.build_kwargs(payload)
    assert caught.value.message == message
    assert caught.value.status_code == 400


def test_user_code_exceptions_propagate_unchanged() -> None:
    run, _ = typed("typed_request_headers.py")
    with pytest.raises(TypeError):
        run.call({"data": [1.0, "two"], "request_headers": {}})


# --- decorators that cannot work: at start-up -------------------------------------------------------------


def test_wrong_parameter_name_fails_at_detection() -> None:
    module = load("typed_wrong_param_name.py")
    with pytest.raises(BadSchema) as caught:
        TypedRun.detect(module.run, SCRIPTS / "typed_wrong_param_name.py")
    assert caught.value.message.startswith(
        "@input_schema('input', StandardPythonParameterType(...)) on run() in typed_wrong_param_name.py names a "
        "parameter run() does not have: run() takes (data)."
    )


def test_sample_no_json_value_becomes_fails_at_detection() -> None:
    module = load("typed_unconvertible_sample.py")
    with pytest.raises(BadSchema, match=r"@input_schema\('threshold', .*the sample for threshold is a numpy.float64"):
        TypedRun.detect(module.run, SCRIPTS / "typed_unconvertible_sample.py")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            "typed_sample_none.py",
            "@input_schema('data', StandardPythonParameterType(...)) for parameter 'data' of run() in "
            "typed_sample_none.py (line 11) cannot work: Sample input cannot be None. Fix: give the parameter type a "
            "sample value of what run() expects.",
        ),
        (
            "typed_numpy_sample_not_array.py",
            "@input_schema('data', NumpyParameterType(...)) for parameter 'data' of run() in "
            "typed_numpy_sample_not_array.py (line 11) cannot work: Invalid sample input provided, must provide a "
            "sample Numpy array. Fix: pass a numpy array, e.g. NumpyParameterType(np.array([[1.0, 2.0]])).",
        ),
        (
            "typed_output_not_parameter_type.py",
            "@output_schema({'result': 1}) of run() in typed_output_not_parameter_type.py (line 12) cannot work: "
            "Error, provided param_type must be a subclass of the AbstractParameterType. Fix: pass a parameter type, "
            "e.g. StandardPythonParameterType({'result': 1}).",
        ),
    ],
)
def test_decorators_failing_at_import_are_explained(script: str, message: str) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever inference-schema raises
        load(script)
    assert explain_schema_failure(caught.value, SCRIPTS / script) == message


def test_other_import_failures_are_not_explained(write_script: Callable[..., Path]) -> None:
    script = write_script("raise ValueError('not a schema problem')\n")
    with pytest.raises(ValueError, match="not a schema") as caught:
        load(script)
    assert explain_schema_failure(caught.value, script) is None


# --- other decorators around run() -----------------------------------------------------------------------

_TIMED = """
import functools
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema

calls = []

def timed(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return function(*args, **kwargs)
    return wrapper

def init():
    pass
"""


def test_a_user_decorator_above_the_schema_is_kept(write_script: Callable[..., Path]) -> None:
    module = load(
        write_script(
            _TIMED + "\n@timed\n@input_schema('n', StandardPythonParameterType(1))\ndef run(n):\n    return n + 1\n"
        )
    )
    run = TypedRun.detect(module.run, Path("score.py"))
    assert run is not None
    assert run.call(run.build_kwargs({"n": 2})) == 3
    assert module.calls == [{"n": 2}]


def test_a_user_decorator_below_the_schema_is_kept(write_script: Callable[..., Path]) -> None:
    module = load(
        write_script(
            _TIMED + "\n@input_schema('n', StandardPythonParameterType(1))\n@timed\ndef run(n):\n    return n + 1\n"
        )
    )
    run = TypedRun.detect(module.run, Path("score.py"))
    assert run is not None
    assert run.call(run.build_kwargs({"n": 2})) == 3
    assert module.calls == [{"n": 2}]


def test_two_decorators_on_one_parameter_convert_outermost_first(write_script: Callable[..., Path]) -> None:
    module = load(
        write_script(
            """
            import numpy as np
            from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
            from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
            from inference_schema.schema_decorators import input_schema

            @input_schema("x", StandardPythonParameterType([1.0]))
            @input_schema("x", NumpyParameterType(np.array([1.0])))
            def run(x):
                return x
            """
        )
    )
    run = TypedRun.detect(module.run, Path("score.py"))
    assert run is not None
    assert [d.param_type.__class__.__name__ for d in read_schema(module.run).inputs] == [
        "StandardPythonParameterType",
        "NumpyParameterType",
    ]
    converted = run.build_kwargs({"x": [1, 2]})["x"]
    assert isinstance(converted, np.ndarray)
    with pytest.raises(InvalidParameter, match="'x' parameter is not valid: expected a JSON array, got number"):
        run.build_kwargs({"x": 3})


def test_a_deadline_during_conversion_is_not_a_bad_value(write_script: Callable[..., Path]) -> None:
    module = load(
        write_script(
            """
            from inference_schema.parameter_types.abstract_parameter_type import AbstractParameterType
            from inference_schema.schema_decorators import input_schema

            class Slow(AbstractParameterType):
                def deserialize_input(self, input_data):
                    raise TimeoutError("deadline")

                def input_to_swagger(self):
                    return {"type": "integer", "example": 1}

            @input_schema("n", Slow(1))
            def run(n):
                return n
            """
        )
    )
    run = TypedRun.detect(module.run, Path("score.py"))
    assert run is not None
    with pytest.raises(TimeoutError, match="deadline"):
        run.build_kwargs({"n": "1"})


def test_a_script_loaded_again_under_the_same_name_after_forgetting_its_schemas() -> None:
    def load_as(name: str) -> ModuleType:
        path = SCRIPTS / "typed_power_bi.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    load_as("typed_reloaded")
    with pytest.raises(Exception, match="output schema already defined for function: typed_reloaded.run"):
        load_as("typed_reloaded")
    forget_registered_schemas("typed_reloaded")
    assert TypedRun.detect(load_as("typed_reloaded").run, SCRIPTS / "typed_power_bi.py") is not None
