"""Start-up failures of `scorehost serve`: each exits non-zero with a precise message and never serves."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import SCRIPTS, Server, kill, start_server

Serve = Callable[..., Server]

SCRIPT_PROBLEM = 3  # the reference's "worker failed to boot" code


def failed_start(serve: Serve, script: str | Path, *args: str) -> tuple[int, str]:
    """Start a server that must not come up; return its exit code and log."""
    server = serve(script, *args, ready=False)
    code = server.wait_exit(60)
    return code, server.log


def assert_never_served(log: str) -> None:
    assert "ready:" not in log
    assert "scorehost.access" not in log


def test_missing_script_names_the_path_and_the_fix(serve: Serve, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "score.py"
    code, log = failed_start(serve, missing)
    assert code == SCRIPT_PROBLEM
    assert f"Entry script '{missing}' not found" in log
    assert "scorehost serve path/to/score.py" in log
    assert "listening on" not in log


def test_a_folder_is_not_a_script(serve: Serve, tmp_path: Path) -> None:
    code, log = failed_start(serve, tmp_path)
    assert code == SCRIPT_PROBLEM
    assert "is not a file" in log


@pytest.mark.parametrize("preload", [False, True], ids=["per-worker", "preload"])
def test_import_error_shows_the_line_and_the_traceback(serve: Serve, preload: bool) -> None:
    code, log = failed_start(serve, "import_error.py", *(["--preload"] if preload else []))
    assert code == SCRIPT_PROBLEM
    assert "The entry script cannot be served." in log
    assert "Importing import_error.py raised KeyError at line 7: 'cutoff'" in log
    assert "Traceback (most recent call last):" in log
    assert f'File "{SCRIPTS.resolve() / "import_error.py"}", line 10, in <module>' in log
    assert "in load_threshold" in log
    assert "importlib" not in log  # only the user's frames
    assert_never_served(log)


def test_missing_module_names_the_module_and_the_fix(serve: Serve) -> None:
    code, log = failed_start(serve, "missing_module.py")
    assert code == SCRIPT_PROBLEM
    assert "Importing missing_module.py failed at line 3: no module named 'scorehost_no_such_module'" in log
    assert "pip install scorehost_no_such_module" in log
    assert "ModuleNotFoundError" in log
    assert_never_served(log)


def test_syntax_error_names_the_line(serve: Serve, tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("def init():\n    pass\n\ndef run(data)\n    return data\n")
    code, log = failed_start(serve, script)
    assert code == SCRIPT_PROBLEM
    assert "broken.py has a syntax error at line 4" in log
    assert_never_served(log)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("no_init.py", "no_init.py does not define init(). An entry script needs init() and run(data)"),
        ("no_run.py", "no_run.py does not define run(). An entry script needs init() and run(data)"),
        (
            "bad_signature.py",
            "bad_signature.py: run() cannot take positional-only parameters, *args or **kwargs (found args)",
        ),
    ],
)
def test_unusable_script_says_what_is_missing(serve: Serve, script: str, message: str) -> None:
    code, log = failed_start(serve, script)
    assert code == SCRIPT_PROBLEM
    assert message in log
    assert_never_served(log)


@pytest.mark.parametrize("args", [[], ["--workers", "2"], ["--preload", "--workers", "2"]], ids=str)
def test_init_raising_exits_with_its_traceback(serve: Serve, args: list[str]) -> None:
    code, log = failed_start(serve, "init_fails.py", *args)
    assert code == SCRIPT_PROBLEM
    assert "init() in init_fails.py raised RuntimeError: model file is corrupt" in log
    assert f'File "{SCRIPTS.resolve() / "init_fails.py"}", line 5, in init' in log
    assert log.count("The entry script cannot be served.") == 1  # reported once, not once per worker
    assert_never_served(log)


@pytest.mark.parametrize("args", [[], ["--preload"]], ids=str)
def test_init_past_its_budget_exits_with_where_it_was(serve: Serve, tmp_path: Path, args: list[str]) -> None:
    # waits_in_init.py waits for a file that never appears: --init-timeout 1 cuts it short.
    code, log = serve_with_env(serve, "waits_in_init.py", {"RELEASE_INIT": str(tmp_path / "never")}, *args)
    assert code == SCRIPT_PROBLEM
    assert "init() in waits_in_init.py raised TimeoutError: init() did not finish within 1 s (--init-timeout)" in log
    assert "waits_in_init.py" in log.split("Traceback", 1)[1]  # the line init() was on
    assert_never_served(log)


def serve_with_env(serve: Serve, script: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    server = serve(script, "--init-timeout", "1", *args, env=env, ready=False)
    return server.wait_exit(60), server.log


def test_init_file_not_found_lists_the_model_dir(serve: Serve, tmp_path: Path) -> None:
    script = tmp_path / "score.py"
    script.write_text(
        "import os\n\ndef init():\n    open(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'model.pkl'))\n\n"
        "def run(data):\n    return data\n"
    )
    model_dir = tmp_path / "model"
    (model_dir / "sub").mkdir(parents=True)
    (model_dir / "sub" / "weights.bin").write_bytes(b"")
    code, log = failed_start(serve, script, "--model-dir", str(model_dir))
    assert code == SCRIPT_PROBLEM
    assert "init() in score.py raised FileNotFoundError" in log
    assert f"AZUREML_MODEL_DIR is {model_dir}; it holds:" in log
    assert "sub/weights.bin" in log


def test_port_in_use_exits_1(serve: Serve) -> None:
    first = serve("echo.py")
    port = first.url.rsplit(":", 1)[1]
    second = start_server([str(SCRIPTS / "echo.py"), "--port", port])
    try:
        assert second.wait_exit(30) == 1
    finally:
        kill(second)
    assert f"Port {port} on 127.0.0.1 is already in use" in second.log
    assert "--port 0" in second.log
    # The first server still owns the port alone and keeps answering.
    with first.client() as client:
        assert client.post("/score", json={"data": 1}).status_code == 200


def test_a_server_told_to_stop_during_init_stops_at_once(serve: Serve, tmp_path: Path) -> None:
    """Nothing is answered before init() returns, so there is nothing to drain: no --graceful-timeout wait."""
    server = serve("waits_in_init.py", "--workers", "2", env={"RELEASE_INIT": str(tmp_path / "never")}, ready=False)
    line = server.wait_for_log("starting on")  # bound, init() running: "listening on" comes once it has returned
    url = line.split("starting on ")[1].split()[0]
    deadline = time.monotonic() + 20
    while httpx.get(url + "/live", timeout=5).status_code != 200:  # a worker is up, its init() running
        assert time.monotonic() < deadline
        time.sleep(0.05)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.wait_exit(20) == 0
    assert time.monotonic() - began < 10  # the graceful timeout is 30 s
    server.wait_for_log("SIGTERM during init\\(\\): this worker")
