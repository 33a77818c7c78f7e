"""Typed entry scripts: a run() decorated with inference-schema's `@input_schema` / `@output_schema`.

The decorators convert each JSON value inside the call to run(), so on the reference a value they cannot
convert looks like a failure of the script (500). Here the decorators are read once, at start-up: each
parameter is converted before the call with the decorator's own parameter type (a failure is a 400 that names
the parameter and the reason), and the function beneath the decorators is called, so nothing is converted twice.

Differences from the reference, on purpose:
- a decorator that can never work (a parameter run() lacks, a sample no JSON value can become) stops start-up;
- a missing parameter's Python default is passed as is, never through the decorator's conversion;
- a `datetime.date` sample converts "YYYY-MM-DD" text (inference-schema 1.8 calls `date.strptime`, which
  does not exist, so such a parameter always failed).
The decorators' special case for Hugging Face payloads (a dict with exactly `input_string` and `parameters`
as the first *positional* argument skips conversion) never applies: run() is called with keywords, as on the
reference.
"""

from __future__ import annotations

import ast
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from scorehost.errors import BadSchema, InvalidParameter, MissingParameter

__all__ = [
    "InputDecorator",
    "RunSchema",
    "TypedRun",
    "explain_schema_failure",
    "forget_registered_schemas",
    "read_schema",
]

HEADERS_PARAMETER = "request_headers"
_DECORATORS_MODULE = "inference_schema.schema_decorators"
_PACKAGE_PATH = f"{os.sep}inference_schema{os.sep}"
# Standard samples whose type a JSON value can be converted to; any other type (a numpy scalar, a range, an
# enum) decorates fine but fails every call.
_CONVERTIBLE = (int, float, bool, str, bytes, bytearray, list, tuple, dict, date, datetime, time)


@dataclass(frozen=True)
class InputDecorator:
    """One `@input_schema(param_name, param_type, convert_to_provided_type, optional)` on run()."""

    param_name: str
    param_type: Any  # an inference_schema AbstractParameterType (the package ships no type information)
    convert: bool
    optional: bool

    def describe(self) -> str:
        """The decorator as a script spells it, shortened: `@input_schema("data", NumpyParameterType(...))`."""
        return f"@input_schema({self.param_name!r}, {type(self.param_type).__name__}(...))"


@dataclass(frozen=True)
class RunSchema:
    """What the inference-schema decorators on a run() say, read from the decorators themselves."""

    target: Callable[..., object]
    """run() beneath the inference-schema decorators: calling it converts nothing."""
    signature: inspect.Signature
    inputs: tuple[InputDecorator, ...]
    """Outermost first: the order in which the decorators convert."""
    has_output: bool

    @property
    def decorated(self) -> bool:
        """Whether inference-schema knows run(): the reference then reads parameters from a JSON object."""
        return bool(self.inputs) or self.has_output


def read_schema(run_function: Callable[..., object]) -> RunSchema:
    """Read the inference-schema decorators on `run_function` (wrapt wrappers; other decorators are looked through)."""
    inputs: list[InputDecorator] = []
    has_output = False
    target: Callable[..., object] | None = None
    current: Any = run_function
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind, wrapper = _schema_layer(current)
        if kind == "input":
            inputs.append(_input_decorator(wrapper))
        elif kind == "output":
            has_output = True
        elif target is None:
            # The first thing that is not an inference-schema wrapper is user code, called as it is. (Above the
            # decorators, a user's decorator keeps them: they then get converted values, which they let through.)
            target = current
        current = getattr(current, "__wrapped__", None)
    return RunSchema(
        target=target or run_function,
        signature=inspect.signature(run_function),
        inputs=tuple(inputs),
        has_output=has_output,
    )


def forget_registered_schemas(module_name: str) -> None:
    """Drop what inference-schema registered for functions of `module_name` (it keys schemas by `module.function`).

    Call it before importing another script under the same module name in this process: the registry would
    otherwise refuse the new script's @output_schema ("output schema already defined") and mix up the schemas.
    """
    from inference_schema import schema_util  # type: ignore[import-untyped]

    # Older releases (before 1.4) keep no __versions__; an environment may pin any release.
    for registry in (getattr(schema_util, "__functions_schema__", {}), getattr(schema_util, "__versions__", {})):
        for name in [name for name in registry if name.rpartition(".")[0] == module_name]:
            del registry[name]


class TypedRun:
    """An inference-schema decorated run(): each parameter from the JSON object's key of the same name."""

    def __init__(self, schema: RunSchema, script: Path) -> None:
        self.schema = schema
        self.script = script
        inputs = [
            p
            for p in schema.signature.parameters.values()
            if p.name != HEADERS_PARAMETER and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self.parameters: tuple[str, ...] = tuple(p.name for p in inputs)
        """run()'s input parameters in signature order, `request_headers` excluded."""
        self.wants_headers = HEADERS_PARAMETER in schema.signature.parameters
        self._defaults = {p.name: p.default for p in inputs if p.default is not p.empty}
        self._converters = {
            name: tuple(d for d in schema.inputs if d.param_name == name and d.convert) for name in self.parameters
        }

    @classmethod
    def detect(cls, run_function: Callable[..., object], script: Path) -> TypedRun | None:
        """A TypedRun when inference-schema knows run(), else None; BadSchema for decorators that cannot work."""
        schema = read_schema(run_function)
        if not schema.decorated:
            return None
        names = list(schema.signature.parameters)
        for decorator in schema.inputs:
            if decorator.param_name not in names:
                raise BadSchema(
                    f"{decorator.describe()} on run() in {script.name} names a parameter run() does not have: "
                    f"run() takes ({', '.join(names)}). Make the decorator's first argument one of these names."
                )
            problem = _sample_problem(decorator.param_type, decorator.param_name) if decorator.convert else None
            if problem:
                raise BadSchema(
                    f"{decorator.describe()} on run() in {script.name} cannot convert any request: {problem}. "
                    "Use a sample of a JSON type (str, int, float, bool, list, dict) or bytes, date, datetime, time."
                )
        return cls(schema, script)

    def build_kwargs(self, payload: Mapping[str, object]) -> dict[str, object]:
        """run()'s keyword arguments from the request's JSON object, converted as the decorators would."""
        kwargs: dict[str, object] = {}
        for name in self.parameters:
            if name in payload:
                kwargs[name] = self._convert(name, payload[name])
            elif name in self._defaults:
                kwargs[name] = self._defaults[name]
            else:
                raise MissingParameter(f"A value is not provided for the {name!r} parameter.")
        return kwargs

    def call(self, kwargs: dict[str, object]) -> object:
        """Call run() beneath the decorators with converted arguments; its exceptions propagate unchanged."""
        return self.schema.target(**kwargs)

    def _convert(self, name: str, value: object) -> object:
        for decorator in self._converters[name]:
            if decorator.optional and _falsy(value):
                continue
            try:
                value = _deserialize(value, decorator.param_type, name)
            except _Invalid as invalid:
                raise InvalidParameter(
                    f"The value of the {name!r} parameter is not valid: {invalid.path}: {invalid.reason}"
                ) from invalid.__cause__
            except (TimeoutError, MemoryError):  # the request's deadline, or the worker's health: not the value's fault
                raise
            except Exception as exc:
                raise InvalidParameter(f"The value of the {name!r} parameter is not valid: {_reason(exc)}") from exc
        return value


class _Invalid(Exception):
    """A nested member cannot be converted; `path` says which (`Inputs.input1`, `request.tags[2]`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _deserialize(value: object, param_type: Any, path: str, nested: bool = False) -> object:
    """inference-schema's own conversion rules, with the member that failed named."""
    sample_type = param_type.sample_data_type
    try:
        if sample_type is dict:
            if not isinstance(value, dict):
                raise ValueError(f"expected a JSON object, got {_json_type(value)}")
            for key, inner in getattr(param_type, "sample_data_type_map", {}).items():
                if key in value:
                    value[key] = _deserialize(value[key], inner, f"{path}.{key}", nested=True)
            return value
        if sample_type in (list, tuple):
            if not isinstance(value, list | tuple):
                raise ValueError(f"expected a JSON array, got {_json_type(value)}")
            items = getattr(param_type, "sample_data_type_list", [])
            if items:
                return [_deserialize(item, items[0], f"{path}[{i}]", nested=True) for i, item in enumerate(value)]
            return value
        if isinstance(value, sample_type):
            return value
        if sample_type is date and isinstance(value, str):
            return datetime.strptime(value, "%Y-%m-%d").date()
        return param_type.deserialize_input(value)
    except _Invalid:
        raise
    except (TimeoutError, MemoryError):
        raise
    except Exception as exc:
        if not nested:
            raise
        raise _Invalid(path, _reason(exc)) from exc


def _sample_problem(param_type: Any, path: str) -> str | None:
    """Why no JSON value can ever be converted with this parameter type (None if one can)."""
    from inference_schema.parameter_types.standard_py_parameter_type import (  # type: ignore[import-untyped]
        StandardPythonParameterType,
    )

    if not isinstance(param_type, StandardPythonParameterType):
        return None  # numpy and pandas samples were checked by the decorator; custom types convert their own way
    sample_type = param_type.sample_data_type
    if sample_type is dict:
        for key, inner in param_type.sample_data_type_map.items():
            problem = _sample_problem(inner, f"{path}.{key}")
            if problem:
                return problem
        return None
    if sample_type in (list, tuple):
        items = param_type.sample_data_type_list
        return _sample_problem(items[0], f"{path}[]") if items else None
    if sample_type not in _CONVERTIBLE:
        kind = f"{sample_type.__module__}.{sample_type.__qualname__}"
        return f"the sample for {path} is a {kind}, which no JSON value becomes"
    return None


def _schema_layer(candidate: object) -> tuple[str | None, Any]:
    """("input" | "output", the decorator's wrapper function) for an inference-schema wrapper, else (None, None)."""
    wrapper = getattr(candidate, "_self_wrapper", None)
    if getattr(wrapper, "__module__", None) != _DECORATORS_MODULE:
        return None, None
    qualname = getattr(wrapper, "__qualname__", "")
    if qualname.startswith("input_schema."):
        return "input", wrapper
    if qualname.startswith("output_schema."):
        return "output", wrapper
    return None, None


def _input_decorator(wrapper: Any) -> InputDecorator:
    values = inspect.getclosurevars(wrapper).nonlocals
    try:
        return InputDecorator(
            param_name=values["param_name"],
            param_type=values["param_type"],
            # Releases before 1.4 had neither argument: they always converted, and every parameter was required.
            convert=bool(values.get("convert_to_provided_type", True)),
            optional=bool(values.get("optional", False)),
        )
    except KeyError as missing:
        raise BadSchema(
            f"This inference-schema release stores @input_schema differently ({missing} not found); "
            "scorehost reads the decorators of inference-schema 1.x."
        ) from None


def _falsy(value: object) -> bool:
    try:
        return not value
    except ValueError:  # an array or frame a previous decorator produced: its truth is ambiguous, so not falsy
        return False


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    text = str(exc)
    return text if text and type(exc) in (ValueError, Exception) else f"{type(exc).__name__}: {text}".rstrip(": ")


# --- Start-up failures raised while the script is imported ------------------------------------------------

_HINTS = {
    "Sample input cannot be None": "give the parameter type a sample value of what run() expects",
    "must provide a sample Numpy array": "pass a numpy array, e.g. NumpyParameterType(np.array([[1.0, 2.0]]))",
    "must provide a sample Pandas Dataframe": "pass a DataFrame, e.g. PandasParameterType(pd.DataFrame({'a': [1]}))",
    "must be a subclass": "pass a parameter type, e.g. StandardPythonParameterType({'result': 1})",
    "output schema already defined": "keep one @output_schema on run()",
    "JSON serializable": "use a sample made of JSON values (str, int, float, bool, list, dict)",
}


def explain_schema_failure(exc: BaseException, script: Path) -> str | None:
    """A message naming the decorator and parameter when importing `script` failed inside inference-schema."""
    frames = inspect.getinnerframes(exc.__traceback__, context=0) if exc.__traceback__ else []
    if not any(_PACKAGE_PATH in frame.filename for frame in frames):
        return None
    user_lines = [frame.lineno for frame in frames if Path(frame.filename) == script]
    if not user_lines:
        return None
    line = user_lines[-1]
    hint = next((hint for text, hint in _HINTS.items() if text in str(exc)), "")
    where = f"in {script.name} (line {line})"
    decorator = _decorator_at(script, line)
    what = decorator or "An inference-schema parameter type"
    message = f"{what} {where} cannot work: {_reason(exc).rstrip('.')}"
    return f"{message}. Fix: {hint}." if hint else message


def _decorator_at(script: Path, line: int) -> str | None:
    """`@input_schema("data", NumpyParameterType(...))` for the decorator of a function spanning `line`."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            end = decorator.end_lineno or decorator.lineno
            if not (decorator.lineno <= line <= end and isinstance(decorator, ast.Call)):
                continue
            name = _call_name(decorator)
            args = [_argument_text(arg) for arg in decorator.args]
            if name == "input_schema" and args:
                return f"@input_schema({', '.join(args[:2])}) for parameter {args[0]} of {node.name}()"
            if name == "output_schema":
                return f"@output_schema({', '.join(args[:1])}) of {node.name}()"
    return None


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _argument_text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Call):
        return f"{_call_name(node)}(...)"
    return ast.unparse(node)
