"""Import an entry script from its path, the way the reference server does, and say precisely what is wrong."""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType, TracebackType

from scorehost.errors import BadSchema, ScriptImportError, ScriptNotFound
from scorehost.host.typed import explain_schema_failure, forget_registered_schemas

__all__ = ["MODULE_NAME", "enter_script_dir", "format_user_traceback", "import_script", "resolve_script"]

# The reference imports score.py under this name; scripts that check `__name__` see the same value.
MODULE_NAME = "entry_module"

_FIX = "Pass the path of your entry script, e.g. `scorehost serve path/to/score.py`."
# Imports whose package has another name on PyPI (`pip install sklearn` refuses to install).
_PACKAGES = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
}
# Frames from these are ours or the import machinery's; matched as prefixes so that a user's folder
# that merely contains the word (`~/importlib_demo/score.py`) keeps its frames.
_NOT_USER_CODE = (
    "<frozen importlib",
    os.path.dirname(importlib.util.__file__) + os.sep,
    os.path.dirname(__file__) + os.sep,
)


def resolve_script(path: str | os.PathLike[str]) -> Path:
    """Return the absolute path of the entry script, or raise ScriptNotFound naming the fix."""
    given = Path(path)
    resolved = given.expanduser().resolve()
    if not resolved.exists():
        raise ScriptNotFound(f"Entry script {str(given)!r} not found (looked at {resolved}). {_FIX}")
    if not resolved.is_file():
        raise ScriptNotFound(f"Entry script {str(given)!r} is not a file ({resolved}). {_FIX}")
    return resolved


def enter_script_dir(script: Path) -> None:
    """Make the script's folder the working directory and importable, so sibling files and modules load."""
    folder = str(script.parent)
    os.chdir(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def import_script(script: Path) -> ModuleType:
    """Execute the script as module `entry_module`; any exception becomes ScriptImportError with its traceback."""
    spec = importlib.util.spec_from_file_location(MODULE_NAME, script)
    if spec is None or spec.loader is None:
        raise ScriptImportError(f"{script} cannot be imported as a Python module; entry scripts must end in .py.")
    module = importlib.util.module_from_spec(spec)
    # Registered so that pickle can find classes the script defines (the reference leaves them unpicklable).
    forget_registered_schemas(MODULE_NAME)  # inference-schema's registry outlives an earlier script of this name
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit from a script is a load failure too
        del sys.modules[MODULE_NAME]
        schema_problem = explain_schema_failure(exc, script)
        if schema_problem:
            raise BadSchema(schema_problem, details=format_user_traceback(exc)) from exc
        raise ScriptImportError(_describe_import_failure(script, exc), details=format_user_traceback(exc)) from exc
    return module


def _describe_import_failure(script: Path, exc: BaseException) -> str:
    where = _innermost_user_line(script, exc.__traceback__)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        package = _PACKAGES.get(top, top)
        return (
            f"Importing {script.name} failed{where}: no module named {exc.name!r}. "
            f"Install it into this environment (e.g. `pip install {package}`), or put {top}.py beside the script."
        )
    if isinstance(exc, SyntaxError):
        return f"{script.name} has a syntax error at line {exc.lineno}: {exc.msg}. Fix the script and start again."
    return f"Importing {script.name} raised {type(exc).__name__}{where}: {exc}"


def _innermost_user_line(script: Path, tb: TracebackType | None) -> str:
    line = ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(script):
            line = f" at line {tb.tb_lineno}"
        tb = tb.tb_next
    return line


def format_user_traceback(exc: BaseException) -> str:
    """The traceback without scorehost's and importlib's own frames, so users see only their code."""
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if not frame.filename.startswith(_NOT_USER_CODE)
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()
