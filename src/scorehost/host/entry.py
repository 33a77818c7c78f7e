"""An entry script ready to serve: `init()` once, `run()` per request. No HTTP and no I/O of its own."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

from scorehost.compat.imports import install_import_aliases
from scorehost.compat.rawhttp import raw_http_requested, reset_raw_http_requested
from scorehost.errors import BadRunSignature, InitFailed, MissingFunction, RunFailed
from scorehost.host.batch import BATCH_FUNCTION, BatchSettings, settings_of
from scorehost.host.inputs import ScoreRequest, build_run_input, typed_payload
from scorehost.host.loader import enter_script_dir, format_user_traceback, import_script, resolve_script
from scorehost.host.prepared import Prepared
from scorehost.host.run_input import RunInput, RunInputDecision, decide_run_input
from scorehost.host.typed import TypedRun

__all__ = ["EntryScript", "RunMode", "load_entry_script"]

HEADERS_PARAMETER = "request_headers"
# An optional step each worker runs after init() (after the fork, with --preload): where a model loaded on the
# CPU once moves to the worker's own GPU. Not part of Azure ML's contract, which never calls it.
INIT_WORKER = "init_worker"


class RunMode(Enum):
    """How run() is called: what the reference logs as "not decorated", "@input_schema" or "@rawhttp"."""

    PLAIN = "plain"  # one input: text, by the run_input rule
    TYPED = "typed"  # inference-schema decorators: one converted argument per parameter
    RAW = "raw"  # @rawhttp: the request object itself

    def describe(self, script: EntryScript) -> str:
        if self is RunMode.TYPED:
            names = ", ".join(script.typed_parameters)
            return f"run() is decorated with @input_schema: it gets {names} from the JSON body's keys of those names"
        if self is RunMode.RAW:
            return "run() is decorated with @rawhttp: it gets the request object (any method, any content type)"
        return f"run() is not decorated: {script.run_input.describe()}"


@dataclass
class EntryScript:
    """A loaded entry script. `call()` is safe to use only after `init()` returned."""

    path: Path
    module: ModuleType
    init_function: Callable[[], object]
    run_function: Callable[..., object]
    input_parameter: str
    wants_headers: bool
    run_input: RunInputDecision
    mode: RunMode = RunMode.PLAIN
    typed: TypedRun | None = None
    initialized: bool = False
    init_seconds: float | None = None  # how long init() took
    run_batch_function: Callable[[list[object]], object] | None = None  # the script's run_batch, if any
    batch: BatchSettings | None = None  # its limits (@scorehost.batch, or the defaults)
    init_worker_function: Callable[[], object] | None = None  # the script's per-worker step, if any

    @property
    def typed_parameters(self) -> tuple[str, ...]:
        """The input parameters of a typed run(), in signature order."""
        return self.typed.parameters if self.typed is not None else (self.input_parameter,)

    def init(self) -> None:
        """Call the script's `init()`; raise InitFailed with the user's traceback and the model folder."""
        began = time.perf_counter()
        try:
            self.init_function()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise InitFailed(_init_failure_message(self.path, exc), details=format_user_traceback(exc)) from exc
        self.init_seconds = time.perf_counter() - began
        self.initialized = True

    def init_worker(self) -> None:
        """Call the script's `init_worker()`, if it has one: in each worker, after `init()` (after the fork,
        with --preload), where the worker's own GPU is visible. InitFailed as for `init()`."""
        if self.init_worker_function is None:
            return
        try:
            self.init_worker_function()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            message = _init_failure_message(self.path, exc).replace("init()", f"{INIT_WORKER}()", 1)
            raise InitFailed(message, details=format_user_traceback(exc)) from exc

    def call(self, data: object, headers: Mapping[str, str] | None = None) -> object:
        """Call `run()` with one request's input; any exception it raises becomes RunFailed."""
        kwargs: dict[str, Any] = {self.input_parameter: data}
        if self.wants_headers:
            kwargs[HEADERS_PARAMETER] = dict(headers or {})
        try:
            return self.run_function(**kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # sys.exit() in run() fails the request, not the worker
            raise RunFailed(f"run() raised {type(exc).__name__}: {exc}") from exc

    def prepare(self, request: ScoreRequest) -> Prepared:
        """What run() will be called with for `request`: a RequestError (400, 415) when it does not fit the script."""
        headers = dict(request.headers) if self.wants_headers else None
        if self.mode is RunMode.PLAIN:
            return Prepared(self.call, build_run_input(self.run_input.rule, request), headers)
        if self.mode is RunMode.TYPED:
            assert self.typed is not None
            arguments = self.typed.build_kwargs(typed_payload(request, self.typed_parameters))
            return Prepared(self.call_typed_kwargs, arguments, headers)  # type: ignore[arg-type]
        if request.raw is None:
            raise TypeError("a @rawhttp run() needs the transport's request object (ScoreRequest.raw)")
        return Prepared(self.call, request.raw(), headers, closes=True)

    def call_batch(self, inputs: list[object]) -> list[object]:
        """Call `run_batch()` with several requests' inputs; RunFailed unless it returns one result per input."""
        assert self.run_batch_function is not None, "call_batch() is for scripts that define run_batch()"
        try:
            results = self.run_batch_function(inputs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise RunFailed(f"run_batch() raised {type(exc).__name__}: {exc}") from exc
        if isinstance(results, str | bytes | Mapping) or not isinstance(results, Iterable):
            raise RunFailed(f"run_batch() returned {type(results).__name__}, not a list of results")
        listed: list[object] = list(results)  # a list, a tuple, a numpy array of one result per row...
        if len(listed) != len(inputs):
            raise RunFailed(f"run_batch() returned {len(listed)} results for {len(inputs)} inputs")
        return listed

    def batch_input(self, data: object) -> object:
        """What run_batch() gets for one request whose run() would get `data` (typed: the converted kwargs)."""
        if isinstance(data, dict) and self.mode is RunMode.TYPED and len(self.typed_parameters) == 1:
            return data[self.typed_parameters[0]]
        return data

    def call_typed(self, payload: Mapping[str, object], headers: Mapping[str, str] | None = None) -> object:
        """Call a typed run() with the parameters read from `payload` and converted by its decorators.

        A missing or unconvertible parameter raises a RequestError (400) before run() is called.
        """
        assert self.typed is not None, "call_typed() is for scripts whose run() has @input_schema"
        return self.call_typed_kwargs(self.typed.build_kwargs(payload), headers)

    def call_typed_kwargs(self, kwargs: dict[str, object], headers: Mapping[str, str] | None = None) -> object:
        """Call a typed run() with arguments its decorators already converted (`typed.build_kwargs`)."""
        assert self.typed is not None, "call_typed_kwargs() is for scripts whose run() has @input_schema"
        if self.wants_headers:
            kwargs[HEADERS_PARAMETER] = dict(headers or {})
        try:
            return self.typed.call(kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise RunFailed(f"run() raised {type(exc).__name__}: {exc}") from exc


def load_entry_script(path: str | os.PathLike[str], run_input: RunInput = RunInput.AUTO) -> EntryScript:
    """Import the script from its own folder and check it can be served (without calling `init()`)."""
    script = resolve_script(path)
    enter_script_dir(script)
    install_import_aliases()  # azureml.* names scripts written for Azure ML import, unless really installed
    reset_raw_http_requested()  # as on the reference, @rawhttp on any function while the script loads counts
    module = import_script(script)
    raw = raw_http_requested()
    init_function = _required_function(module, "init", script)
    run_function = _required_function(module, "run", script)
    driver = getattr(module, "driver_module", None)
    if isinstance(driver, ModuleType) and callable(getattr(driver, "run", None)):
        run_function = driver.run  # SDK-generated driver scripts delegate run() to an inner module
    typed = TypedRun.detect(run_function, script)
    if typed is not None and raw:
        raise BadRunSignature(
            f"{script.name}: run() cannot be decorated with both @rawhttp and @input_schema; "
            "remove one (a @rawhttp run() reads the request itself)."
        )
    input_parameter, wants_headers = _inspect_run(run_function, script, several_inputs=typed is not None)
    mode = RunMode.TYPED if typed is not None else RunMode.RAW if raw else RunMode.PLAIN
    run_batch = getattr(module, BATCH_FUNCTION, None)
    if run_batch is not None:
        _inspect_run_batch(run_batch, script)
    init_worker = getattr(module, INIT_WORKER, None)
    if init_worker is not None and not callable(init_worker):
        raise BadRunSignature(f"{script.name} defines {INIT_WORKER} as {type(init_worker).__name__}, not a function.")
    return EntryScript(
        path=script,
        module=module,
        init_function=init_function,
        run_function=run_function,
        input_parameter=input_parameter,
        wants_headers=wants_headers,
        run_input=decide_run_input(run_input, script),
        mode=mode,
        typed=typed,
        run_batch_function=run_batch,
        batch=settings_of(run_batch, script) if run_batch is not None else None,
        init_worker_function=init_worker,
    )


def _required_function(module: ModuleType, name: str, script: Path) -> Callable[..., object]:
    function = getattr(module, name, None)
    if function is None:
        purpose = "load the model once" if name == "init" else "score one request"
        raise MissingFunction(
            f"{script.name} does not define {name}(). An entry script needs init() and run(data); "
            f"add `def {name}(...)` to {script} ({name}() is where you {purpose})."
        )
    if not callable(function):
        raise MissingFunction(f"{script.name} defines {name} as {type(function).__name__}, not a function.")
    return function  # type: ignore[no-any-return]


def _inspect_run(run: Callable[..., object], script: Path, *, several_inputs: bool = False) -> tuple[str, bool]:
    """Return (the parameter that receives the input, whether run() wants the request headers)."""
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError) as exc:
        raise BadRunSignature(f"{script.name}: the signature of run() cannot be read ({exc}).") from exc
    variadic = [p.name for p in parameters if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)]
    if variadic:
        raise BadRunSignature(
            f"{script.name}: run() cannot take positional-only parameters, *args or **kwargs "
            f"(found {', '.join(variadic)}). Declare it as `def run(data):`."
        )
    wants_headers = any(p.name == HEADERS_PARAMETER for p in parameters)
    inputs = [p for p in parameters if p.name != HEADERS_PARAMETER]
    if not inputs:
        raise BadRunSignature(
            f"{script.name}: run() takes no parameter for the input data. Declare it as `def run(data):`."
        )
    required = [p.name for p in inputs[1:] if p.default is p.empty]
    if required and not several_inputs:
        raise BadRunSignature(
            f"{script.name}: run() requires {', '.join([inputs[0].name, *required])}, but an undecorated run() "
            f"receives a single input. Give {', '.join(required)} a default value."
        )
    return inputs[0].name, wants_headers


def _inspect_run_batch(run_batch: object, script: Path) -> None:
    if not callable(run_batch):
        raise BadRunSignature(f"{script.name} defines run_batch as {type(run_batch).__name__}, not a function.")
    try:
        parameters = list(inspect.signature(run_batch).parameters.values())
    except (TypeError, ValueError) as exc:
        raise BadRunSignature(f"{script.name}: the signature of run_batch() cannot be read ({exc}).") from exc
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(required) != 1 or required[0].kind is inspect.Parameter.KEYWORD_ONLY:
        raise BadRunSignature(
            f"{script.name}: run_batch() must take one argument, the list of inputs, and return a list of results "
            "in the same order. Declare it as `def run_batch(inputs):`."
        )


def _init_failure_message(script: Path, exc: BaseException) -> str:
    message = f"init() in {script.name} raised {type(exc).__name__}: {exc}"
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    if isinstance(exc, FileNotFoundError):
        if model_dir:
            listing = _list_folder(Path(model_dir))
            message += f"\nAZUREML_MODEL_DIR is {model_dir}; it holds:\n{listing}"
        else:
            message += "\nAZUREML_MODEL_DIR is not set: pass the model folder with --model-dir."
    return message


def _list_folder(folder: Path, limit: int = 50) -> str:
    if not folder.is_dir():
        return "  (not a folder)"
    entries = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    shown = [f"  {e}" for e in entries[:limit]] or ["  (empty)"]
    if len(entries) > limit:
        shown.append(f"  ... and {len(entries) - limit} more")
    return "\n".join(shown)
