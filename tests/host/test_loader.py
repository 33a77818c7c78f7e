"""Importing an entry script from its path: its folder, its module name, and each way importing fails."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scorehost.errors import ScriptImportError, ScriptLoadError, ScriptNotFound
from scorehost.host.loader import (
    MODULE_NAME,
    enter_script_dir,
    format_user_traceback,
    import_script,
    resolve_script,
)

pytestmark = pytest.mark.usefixtures("script_sandbox")

WriteScript = Callable[..., Path]


def load(path: Path) -> object:
    """What load_entry_script does before checking init/run: resolve, enter the folder, import."""
    script = resolve_script(path)
    enter_script_dir(script)
    return import_script(script)


# --- finding the script ----------------------------------------------------------------------------


def test_resolve_returns_the_absolute_path(write_script: WriteScript, monkeypatch: pytest.MonkeyPatch) -> None:
    script = write_script("x = 1\n")
    monkeypatch.chdir(script.parent.parent)
    resolved = resolve_script(Path("app") / "score.py")
    assert resolved.is_absolute()
    assert resolved == script.resolve()


def test_missing_script_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "score.py"
    with pytest.raises(ScriptNotFound) as caught:
        resolve_script(missing)
    message = str(caught.value)
    assert "not found" in message
    assert str(missing) in message
    assert "scorehost serve path/to/score.py" in message
    # One exception tree: a start-up error, importable as ImportError by callers that catch that.
    assert isinstance(caught.value, ScriptLoadError)
    assert isinstance(caught.value, ImportError)


def test_directory_instead_of_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScriptNotFound, match="is not a file"):
        resolve_script(tmp_path)


def test_non_python_file_cannot_be_imported(write_script: WriteScript) -> None:
    script = write_script("def init(): pass\n", name="score.txt")
    with pytest.raises(ScriptImportError, match=r"entry scripts must end in \.py"):
        load(script)


# --- where it runs -----------------------------------------------------------------------------------


def test_the_module_is_named_entry_module(write_script: WriteScript) -> None:
    script = write_script("NAME = __name__\nFILE = __file__\n")
    module = load(script)
    assert MODULE_NAME == "entry_module"
    assert module.NAME == "entry_module"  # type: ignore[attr-defined]
    assert str(script.resolve()) == module.FILE  # type: ignore[attr-defined]
    assert sys.modules["entry_module"] is module


def test_classes_defined_in_the_script_can_be_pickled(write_script: WriteScript) -> None:
    script = write_script(
        """
        class Preprocessor:
            def __init__(self, scale):
                self.scale = scale
        """
    )
    module = load(script)
    copy = pickle.loads(pickle.dumps(module.Preprocessor(3)))  # type: ignore[attr-defined]
    assert copy.scale == 3
    assert type(copy).__module__ == "entry_module"


def test_working_directory_is_the_script_folder(write_script: WriteScript, tmp_path: Path) -> None:
    script = write_script("import os\nCWD = os.getcwd()\n")
    os.chdir(tmp_path)  # somewhere else; the sandbox restores the original
    module = load(script)
    assert str(script.parent.resolve()) == module.CWD  # type: ignore[attr-defined]
    assert os.getcwd() == str(script.parent.resolve())


def test_sibling_module_imports(write_script: WriteScript) -> None:
    write_script("def double(x):\n    return 2 * x\n", name="scorehost_test_sibling.py")
    script = write_script("from scorehost_test_sibling import double\nANSWER = double(21)\n")
    module = load(script)
    assert module.ANSWER == 42  # type: ignore[attr-defined]
    assert str(script.parent.resolve()) == sys.path[0]


def test_entering_the_folder_twice_adds_it_once(write_script: WriteScript) -> None:
    script = write_script("x = 1\n").resolve()
    enter_script_dir(script)
    enter_script_dir(script)
    assert sys.path.count(str(script.parent)) == 1


def test_relative_paths_open_from_the_script_folder(write_script: WriteScript, tmp_path: Path) -> None:
    """The seed documentation's local-model example: `models/...` beside score.py."""
    model = tmp_path / "app" / "models" / "model1.txt"
    model.parent.mkdir(parents=True)
    model.write_text("weights-v1")
    script = write_script(
        """
        with open("models/model1.txt") as f:
            WEIGHTS = f.read()
        """
    )
    os.chdir(tmp_path)
    module = load(script)
    assert module.WEIGHTS == "weights-v1"  # type: ignore[attr-defined]


# --- import failures ------------------------------------------------------------------------------


def test_import_raising_gives_the_users_line_and_traceback(write_script: WriteScript) -> None:
    script = write_script(
        """
        import os

        def helper():
            raise ValueError("config is missing key 'alpha'")

        helper()
        """
    )
    with pytest.raises(ScriptImportError) as caught:
        load(script)
    error = caught.value
    assert error.message == ("Importing score.py raised ValueError at line 4: config is missing key 'alpha'")
    assert error.details.startswith("Traceback (most recent call last):")
    assert "raise ValueError(\"config is missing key 'alpha'\")" in error.details
    assert "line 6" in error.details  # the call site, too
    assert "ValueError: config is missing key 'alpha'" in error.details
    # Only the user's frames: not importlib's, not scorehost's.
    assert "importlib" not in error.details
    assert "loader.py" not in error.details
    # str() carries both, which is what the start-up log prints.
    assert str(error) == f"{error.message}\n{error.details}"
    assert isinstance(error.__cause__, ValueError)


def test_failed_import_leaves_no_half_module(write_script: WriteScript) -> None:
    script = write_script("raise RuntimeError('boom')\n")
    with pytest.raises(ScriptImportError):
        load(script)
    assert MODULE_NAME not in sys.modules


def test_error_raised_in_a_sibling_module_points_at_both(write_script: WriteScript) -> None:
    write_script("raise KeyError('MODEL_NAME')\n", name="scorehost_test_broken_helper.py")
    script = write_script("x = 1\nimport scorehost_test_broken_helper\n")
    with pytest.raises(ScriptImportError) as caught:
        load(script)
    # The innermost line *in score.py* is the import statement.
    assert caught.value.message == "Importing score.py raised KeyError at line 2: 'MODEL_NAME'"
    assert "scorehost_test_broken_helper.py" in caught.value.details
    assert "raise KeyError('MODEL_NAME')" in caught.value.details


def test_missing_package_says_how_to_install_it(write_script: WriteScript) -> None:
    script = write_script("import json\nimport scorehost_no_such_package.sub\n")
    with pytest.raises(ScriptImportError) as caught:
        load(script)
    message = caught.value.message
    assert "no module named 'scorehost_no_such_package'" in message
    assert "at line 2" in message
    assert "`pip install scorehost_no_such_package`" in message
    assert "put scorehost_no_such_package.py beside the script" in message


def test_syntax_error_names_the_line(write_script: WriteScript) -> None:
    script = write_script("def init():\n    pass\n\ndef run(data)\n    return data\n")
    with pytest.raises(ScriptImportError) as caught:
        load(script)
    assert caught.value.message.startswith("score.py has a syntax error at line 4: ")
    assert "SyntaxError" in caught.value.details
    assert "def run(data)" in caught.value.details


def test_sys_exit_at_import_is_a_load_error(write_script: WriteScript) -> None:
    script = write_script("import sys\nsys.exit(2)\n")
    with pytest.raises(ScriptImportError, match=r"raised SystemExit at line 2"):
        load(script)


def test_keyboard_interrupt_is_not_swallowed(write_script: WriteScript) -> None:
    script = write_script("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load(script)


# --- tracebacks -------------------------------------------------------------------------------------


def test_user_frames_survive_in_folders_whose_name_mentions_importlib(tmp_path: Path) -> None:
    """Only importlib's own frames are dropped, not a user folder that happens to contain the word."""
    folder = tmp_path / "importlib_demo"
    folder.mkdir()
    script = folder / "score.py"
    script.write_text("def init():\n    pass\n\nraise OSError('disk full')\n")
    with pytest.raises(ScriptImportError) as caught:
        load(script)
    assert "raise OSError('disk full')" in caught.value.details
    assert str(script.resolve()) in caught.value.details


def test_format_user_traceback_of_an_exception_raised_here() -> None:
    def user_code() -> None:
        raise LookupError("no such column: age")

    try:
        user_code()
    except LookupError as exc:
        text = format_user_traceback(exc)
    assert text.splitlines()[0] == "Traceback (most recent call last):"
    assert 'raise LookupError("no such column: age")' in text
    assert text.endswith("LookupError: no such column: age")


@pytest.mark.parametrize(
    ("module", "package"),
    [("sklearn.linear_model", "scikit-learn"), ("cv2", "opencv-python"), ("PIL.Image", "pillow"), ("yaml", "pyyaml")],
)
def test_missing_package_names_its_pypi_name(
    write_script: WriteScript, monkeypatch: pytest.MonkeyPatch, module: str, package: str
) -> None:
    top = module.split(".")[0]
    monkeypatch.setitem(sys.modules, top, None)  # makes `import top` fail as if it were not installed
    script = write_script(f"import {module}\n")
    with pytest.raises(ScriptImportError) as caught:
        load(script)
    assert f"no module named '{top}" in caught.value.message
    assert f"`pip install {package}`" in caught.value.message
