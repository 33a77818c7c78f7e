"""An entry script ready to serve: init()/run() found and checked, init() called, run() called per request."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from scorehost.errors import BadRunSignature, InitFailed, MissingFunction, RunFailed, ScriptLoadError
from scorehost.host import EntryScript, RunInput, RunInputRule, load_entry_script

pytestmark = pytest.mark.usefixtures("script_sandbox")

WriteScript = Callable[..., Path]


def test_a_plain_script_loads_without_calling_init(write_script: WriteScript) -> None:
    script = write_script(
        """
        calls = []

        def init():
            calls.append("init")

        def run(data):
            return data
        """
    )
    entry = load_entry_script(script)
    assert isinstance(entry, EntryScript)
    assert entry.path == script.resolve()
    assert entry.module.__name__ == "entry_module"
    assert entry.input_parameter == "data"
    assert entry.wants_headers is False
    assert entry.initialized is False
    assert entry.module.calls == []
    assert entry.run_input.rule is RunInputRule.DATA_IF_ONLY_KEY


def test_init_runs_once_and_marks_the_script_ready(write_script: WriteScript) -> None:
    script = write_script(
        """
        calls = []

        def init():
            calls.append("init")
            return "ignored"

        def run(data):
            return len(calls)
        """
    )
    entry = load_entry_script(script)
    entry.init()
    assert entry.initialized is True
    assert entry.module.calls == ["init"]
    assert entry.call('{"x": 1}') == 1


def test_run_receives_the_input_by_its_own_parameter_name(write_script: WriteScript) -> None:
    script = write_script(
        """
        def init():
            pass

        def run(raw_data, threshold=0.5):
            return {"raw": raw_data, "threshold": threshold}
        """
    )
    entry = load_entry_script(script)
    assert entry.input_parameter == "raw_data"
    assert entry.call("[1, 2]") == {"raw": "[1, 2]", "threshold": 0.5}


def test_keyword_only_input_parameter_works(write_script: WriteScript) -> None:
    script = write_script("def init(): pass\ndef run(*, data): return data\n")
    entry = load_entry_script(script)
    assert entry.input_parameter == "data"
    assert entry.call("x") == "x"


# --- missing or unusable functions ------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["init", "run"])
def test_missing_function_is_named_with_the_fix(write_script: WriteScript, missing: str) -> None:
    present = "run(data)" if missing == "init" else "init()"
    script = write_script(f"def {present}:\n    pass\n")
    with pytest.raises(MissingFunction) as caught:
        load_entry_script(script)
    message = str(caught.value)
    assert f"score.py does not define {missing}()" in message
    assert f"add `def {missing}(...)` to {script.resolve()}" in message


@pytest.mark.parametrize("name", ["init", "run"])
def test_function_that_is_not_callable(write_script: WriteScript, name: str) -> None:
    other = "run(data)" if name == "init" else "init()"
    script = write_script(f"{name} = 42\ndef {other}:\n    pass\n")
    with pytest.raises(MissingFunction, match=f"score.py defines {name} as int, not a function"):
        load_entry_script(script)


@pytest.mark.parametrize(
    ("signature", "found"),
    [
        ("*args", "args"),
        ("data, **kwargs", "kwargs"),
        ("data, /", "data"),
        ("data, *rest", "rest"),
    ],
)
def test_run_with_variadic_or_positional_only_parameters(write_script: WriteScript, signature: str, found: str) -> None:
    script = write_script(f"def init(): pass\ndef run({signature}): pass\n")
    with pytest.raises(BadRunSignature) as caught:
        load_entry_script(script)
    message = str(caught.value)
    assert message.startswith("score.py: run() cannot take positional-only parameters, *args or **kwargs")
    assert f"(found {found})" in message
    assert "`def run(data):`" in message


@pytest.mark.parametrize("signature", ["", "request_headers"])
def test_run_without_an_input_parameter(write_script: WriteScript, signature: str) -> None:
    script = write_script(f"def init(): pass\ndef run({signature}): pass\n")
    with pytest.raises(BadRunSignature, match=r"run\(\) takes no parameter for the input data"):
        load_entry_script(script)


def test_run_with_a_second_required_parameter(write_script: WriteScript) -> None:
    script = write_script("def init(): pass\ndef run(data, threshold, *, mode): pass\n")
    with pytest.raises(BadRunSignature) as caught:
        load_entry_script(script)
    message = str(caught.value)
    assert "run() requires data, threshold, mode" in message
    assert "Give threshold, mode a default value." in message


def test_run_whose_signature_cannot_be_read(write_script: WriteScript) -> None:
    # Some builtins have no introspectable signature.
    script = write_script("def init(): pass\nrun = dict.fromkeys\n")
    with pytest.raises(BadRunSignature):
        load_entry_script(script)


def test_every_start_up_error_is_a_script_load_error(write_script: WriteScript) -> None:
    script = write_script("def init(): pass\ndef run(): pass\n")
    with pytest.raises(ScriptLoadError):
        load_entry_script(script)


# --- request_headers ----------------------------------------------------------------------------------


def test_request_headers_parameter_gets_the_headers(write_script: WriteScript) -> None:
    script = write_script(
        """
        def init():
            pass

        def run(data, request_headers):
            return data, request_headers
        """
    )
    entry = load_entry_script(script)
    assert entry.wants_headers is True
    assert entry.input_parameter == "data"
    headers = {"X-Custom": "1", "Content-Type": "application/json"}
    assert entry.call("payload", headers) == ("payload", headers)
    assert entry.call("payload") == ("payload", {})  # a request without headers still calls run()


def test_request_headers_first_still_leaves_data_as_input(write_script: WriteScript) -> None:
    script = write_script("def init(): pass\ndef run(request_headers, data): return data\n")
    entry = load_entry_script(script)
    assert entry.input_parameter == "data"
    assert entry.wants_headers is True


def test_headers_are_a_copy(write_script: WriteScript) -> None:
    script = write_script(
        """
        def init():
            pass

        def run(data, request_headers):
            request_headers["X-Injected"] = "yes"
            return "ok"
        """
    )
    entry = load_entry_script(script)
    headers = {"Host": "example"}
    entry.call("x", headers)
    assert headers == {"Host": "example"}


# --- driver_module -----------------------------------------------------------------------------------


def test_driver_module_run_is_called_instead(write_script: WriteScript) -> None:
    """SDK-generated driver scripts delegate run() to an inner module; init() stays the outer one."""
    write_script(
        """
        def run(inner_input):
            return "inner:" + inner_input
        """,
        name="scorehost_test_driver.py",
    )
    script = write_script(
        """
        import scorehost_test_driver as driver_module

        def init():
            global ready
            ready = "outer"

        def run(data):
            return "outer:" + data
        """
    )
    entry = load_entry_script(script)
    assert entry.input_parameter == "inner_input"
    assert entry.call("x") == "inner:x"
    entry.init()
    assert entry.module.ready == "outer"


def test_driver_module_without_run_keeps_the_outer_run(write_script: WriteScript) -> None:
    write_script("VALUE = 1\n", name="scorehost_test_driver_norun.py")
    script = write_script(
        """
        import scorehost_test_driver_norun as driver_module

        def init():
            pass

        def run(data):
            return "outer:" + data
        """
    )
    assert load_entry_script(script).call("x") == "outer:x"


def test_driver_module_that_is_not_a_module_is_ignored(write_script: WriteScript) -> None:
    script = write_script(
        """
        class driver_module:
            @staticmethod
            def run(data):
                return "class"

        def init():
            pass

        def run(data):
            return "outer"
        """
    )
    assert load_entry_script(script).call("x") == "outer"


# --- init() failing ---------------------------------------------------------------------------------


def test_init_raising_gives_the_traceback(write_script: WriteScript) -> None:
    script = write_script(
        """
        def load_weights():
            raise RuntimeError("weights are corrupt")

        def init():
            load_weights()

        def run(data):
            return data
        """
    )
    entry = load_entry_script(script)
    with pytest.raises(InitFailed) as caught:
        entry.init()
    error = caught.value
    assert error.message == "init() in score.py raised RuntimeError: weights are corrupt"
    assert 'raise RuntimeError("weights are corrupt")' in error.details
    assert "load_weights()" in error.details
    assert "entry.py" not in error.details  # scorehost's own frames are left out
    assert isinstance(error.__cause__, RuntimeError)
    assert entry.initialized is False


def test_init_file_not_found_lists_the_model_folder(
    write_script: WriteScript, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "sklearn_model" / "1").mkdir(parents=True)
    (model_dir / "sklearn_model" / "1" / "model.joblib").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    script = write_script(
        """
        import os

        def init():
            open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))

        def run(data):
            return data
        """
    )
    entry = load_entry_script(script)
    with pytest.raises(InitFailed) as caught:
        entry.init()
    lines = caught.value.message.splitlines()
    assert lines[0].startswith("init() in score.py raised FileNotFoundError:")
    assert "model.pkl" in lines[0]
    assert lines[1:] == [
        f"AZUREML_MODEL_DIR is {model_dir}; it holds:",
        "  sklearn_model",
        "  sklearn_model/1",
        "  sklearn_model/1/model.joblib",
    ]


def test_init_file_not_found_without_model_dir_says_how_to_set_it(write_script: WriteScript) -> None:
    script = write_script("def init():\n    open('missing.pkl')\ndef run(data): pass\n")
    entry = load_entry_script(script)
    with pytest.raises(InitFailed) as caught:
        entry.init()
    assert caught.value.message.endswith("AZUREML_MODEL_DIR is not set: pass the model folder with --model-dir.")


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("empty", ["  (empty)"]),
        ("file", ["  (not a folder)"]),
        ("many", [*(f"  f{i:03d}" for i in range(50)), "  ... and 10 more"]),
    ],
)
def test_model_folder_listing_edge_cases(
    write_script: WriteScript, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, expected: list[str]
) -> None:
    model_dir = tmp_path / "model"
    if layout == "file":
        model_dir.write_text("not a folder")
    else:
        model_dir.mkdir()
    if layout == "many":
        for i in range(60):
            (model_dir / f"f{i:03d}").write_text("")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    script = write_script("def init():\n    raise FileNotFoundError('model.pkl')\ndef run(data): pass\n")
    entry = load_entry_script(script)
    with pytest.raises(InitFailed) as caught:
        entry.init()
    assert caught.value.message.splitlines()[2:] == expected


def test_other_init_errors_do_not_list_the_model_folder(
    write_script: WriteScript, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = write_script("def init():\n    raise ValueError('bad')\ndef run(data): pass\n")
    entry = load_entry_script(script)
    with pytest.raises(InitFailed) as caught:
        entry.init()
    assert caught.value.message == "init() in score.py raised ValueError: bad"


def test_sys_exit_in_init_is_an_init_failure(write_script: WriteScript) -> None:
    script = write_script("import sys\ndef init():\n    sys.exit(1)\ndef run(data): pass\n")
    entry = load_entry_script(script)
    with pytest.raises(InitFailed, match="raised SystemExit"):
        entry.init()


def test_init_fails_fixture(scripts: Path) -> None:
    entry = load_entry_script(scripts / "init_fails.py")
    with pytest.raises(InitFailed) as caught:
        entry.init()
    assert caught.value.message == "init() in init_fails.py raised RuntimeError: model file is corrupt"
    assert caught.value.status_code == 500


# --- run() failing ------------------------------------------------------------------------------------


def test_run_raising_becomes_run_failed_with_the_message(write_script: WriteScript) -> None:
    script = write_script(
        """
        def init():
            pass

        def run(data):
            raise ValueError(f"cannot score {data}")
        """
    )
    entry = load_entry_script(script)
    entry.init()
    with pytest.raises(RunFailed) as caught:
        entry.call("[1, 2]")
    assert caught.value.message == "run() raised ValueError: cannot score [1, 2]"
    assert caught.value.status_code == 500
    assert isinstance(caught.value.__cause__, ValueError)


def test_run_calling_sys_exit_is_a_run_failure(write_script: WriteScript) -> None:
    """A script's sys.exit() in run() must not take the worker down with it."""
    script = write_script("import sys\ndef init(): pass\ndef run(data):\n    sys.exit('bye')\n")
    entry = load_entry_script(script)
    with pytest.raises(RunFailed, match=r"run\(\) raised SystemExit: bye"):
        entry.call("x")


def test_explicit_run_input_settings(write_script: WriteScript) -> None:
    script = write_script("import json\ndef init(): pass\ndef run(raw):\n    return json.loads(raw)['data']\n")
    assert load_entry_script(script).run_input.rule is RunInputRule.BODY
    assert load_entry_script(script, RunInput.DATA).run_input.rule is RunInputRule.DATA
    assert load_entry_script(script, RunInput.BODY).run_input.rule is RunInputRule.BODY


# --- the fixture zoo, in process --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "error", "says"),
    [
        ("no_init.py", MissingFunction, "no_init.py does not define init()"),
        ("no_run.py", MissingFunction, "no_run.py does not define run()"),
        ("bad_signature.py", BadRunSignature, "(found args)"),
        ("missing_module.py", ScriptLoadError, "`pip install scorehost_no_such_module`"),
        ("import_error.py", ScriptLoadError, "Importing import_error.py raised KeyError at line 7: 'cutoff'"),
    ],
)
def test_zoo_scripts_that_cannot_be_served(scripts: Path, script: str, error: type[ScriptLoadError], says: str) -> None:
    with pytest.raises(error) as caught:
        load_entry_script(scripts / script)
    assert says in str(caught.value)


def test_local_model_loads_from_the_source_folder(scripts: Path, tmp_path: Path) -> None:
    """models/ opened relative to the working directory and to __file__, and a sibling module imported."""
    os.chdir(tmp_path)
    entry = load_entry_script(scripts / "local_model" / "score.py")
    entry.init()
    # weights [1, 10], features doubled, bias 0.5
    assert entry.call("[[1, 2], [0, 1]]") == [2 + 40 + 0.5, 0 + 20 + 0.5]
