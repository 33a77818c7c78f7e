"""`scorehost serve` as a command: its help, its option errors, and real runs of the installed command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import SCRIPTS, Server, kill, start_server, wait_ready

from scorehost import __version__
from scorehost.cli import cli

Serve = Callable[..., Server]

# Every invocation that must fail names a script that does not exist, so that a value wrongly accepted
# ends in a quick "script not found" (exit 3) instead of a server started inside the test process.
MISSING = str(SCRIPTS / "does_not_exist.py")


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


# --- help and version ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_serve_help(flag: str) -> None:
    code, output = invoke("serve", flag)
    assert code == 0, output
    assert output.startswith("Usage: cli serve [OPTIONS] [SCRIPT]")
    assert "Serve SCRIPT (a score.py with init() and run()) on http://127.0.0.1:5001." in output
    for option in (
        "--entry-script, --entry_script",
        "--model-dir, --model_dir",
        "--host",
        "--port",
        "--workers, --worker_count",
        "--preload / --no-preload",
        "--threads",
        "--timeout",
        "--max-body-size",
        "--run-input [auto|data|body]",
        "--graceful-timeout",
        "--log-format [text|json]",
        "--log-level",
    ):
        assert option in output, option
    for text in ("[default: 127.0.0.1", "[default: 5001]", "[default: auto]", "[default: 100MiB]", "'auto' for one"):
        assert text in output, text
    for variable in ("AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR", "SERVER_PORT", "WORKER_COUNT", "SCORING_TIMEOUT_MS"):
        assert variable in output, variable
    assert "scorehost serve score.py --model-dir ./model --workers auto --preload" in output


def test_group_help_and_version() -> None:
    code, output = invoke("--help")
    assert code == 0
    assert "serve" in output
    assert "Serve Azure ML-style entry scripts" in output
    assert invoke("--version") == (0, f"scorehost, version {__version__}\n")


# --- option errors (usage errors: exit 2, the flag named) -----------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "Invalid value for '--workers': workers must be at least 1 (or auto)."),
        (["--workers", "many"], "Invalid value for '--workers': invalid literal for int() with base 10: 'many'."),
        (["--worker_count", "-1"], "Invalid value for '--workers': workers must be at least 1 (or auto)."),
        (["--port", "70000"], "Invalid value for '--port': Input should be less than or equal to 65535."),
        (["--port", "abc"], "Invalid value for '--port': 'abc' is not a valid integer."),
        (["--threads", "0"], "Invalid value for '--threads': Input should be greater than or equal to 1."),
        (["--timeout", "0"], "Invalid value for '--timeout': Input should be greater than 0."),
        (["--timeout", "soon"], "Invalid value for '--timeout': 'soon' is not a valid float."),
        (["--max-body-size", "ten"], "Invalid value for '--max-body-size': 'ten' is not a size"),
        (["--max-body-size", "5 parsecs"], "Invalid value for '--max-body-size': '5 parsecs' is not a size"),
        (["--run-input", "json"], "Invalid value for '--run-input': 'json' is not one of 'auto', 'data', 'body'."),
        (["--log-format", "xml"], "Invalid value for '--log-format': 'xml' is not one of 'text', 'json'."),
        (["--graceful-timeout", "-1"], "Invalid value for '--graceful-timeout': Input should be greater than or"),
        (["--bogus"], "No such option '--bogus'."),
    ],
)
def test_bad_option_is_a_usage_error(args: list[str], message: str) -> None:
    code, output = invoke("serve", MISSING, *args)
    assert code == 2, output
    assert "Usage: " in output
    assert message in output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCOREHOST_WORKERS": "lots"}, "Invalid value for 'SCOREHOST_WORKERS': invalid literal for int()"),
        ({"SCORING_TIMEOUT_MS": "abc"}, "Invalid value for 'SCORING_TIMEOUT_MS': Input should be a valid integer"),
        ({"SCOREHOST_RUN_INPUT": "raw"}, "Invalid value for 'run_input': Input should be 'auto', 'data' or 'body'"),
    ],
)
def test_bad_environment_value_is_a_usage_error(env: dict[str, str], message: str) -> None:
    code, output = invoke("serve", MISSING, env=env)
    assert code == 2, output
    assert message in output


# --- the real command, in subprocesses ----------------------------------------------------------


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    scorehost = Path(sys.executable).with_name("scorehost")  # the console script installed beside python
    return subprocess.run(
        [str(scorehost), *args], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
    )


def test_installed_command_help() -> None:
    result = run_command("serve", "--help")
    assert result.returncode == 0
    assert "--run-input [auto|data|body]" in result.stdout


def test_no_script_exits_2_and_says_how_to_give_one() -> None:
    result = run_command("serve")
    assert result.returncode == 2
    assert "No entry script given: `scorehost serve path/to/score.py` (or set AZUREML_ENTRY_SCRIPT)." in result.stderr


def test_missing_script_exits_3() -> None:
    result = run_command("serve", MISSING, "--port", "0")
    assert result.returncode == 3
    assert f"Entry script '{MISSING}' not found" in result.stderr


def test_bad_option_exits_2_without_serving() -> None:
    result = run_command("serve", str(SCRIPTS / "echo.py"), "--workers", "0")
    assert result.returncode == 2
    assert "Error: Invalid value for '--workers'" in result.stderr
    assert "listening" not in result.stderr


def test_underscore_aliases_of_the_reference_cli(tmp_path: Path) -> None:
    args = ["--entry_script", str(SCRIPTS / "environment.py"), "--model_dir", str(tmp_path), "--worker_count", "2"]
    server = start_server(args)
    try:
        wait_ready(server)
        assert "workers: 2," in server.log
        assert httpx.post(f"{server.url}/score", json={"data": 1}).json()["model_dir"] == str(tmp_path)
    finally:
        kill(server)


def test_python_dash_m_runs_the_same_command(serve: Serve) -> None:
    # The `serve` fixture itself runs `python -m scorehost serve SCRIPT --port 0`.
    server = serve("echo.py", "--host", "127.0.0.1", "--timeout", "5", "--threads", "1", "--no-preload")
    assert server.url.startswith("http://127.0.0.1:")
    assert "limits: 5.0 s per request" in server.log
    assert httpx.post(f"{server.url}/score", json={"data": [1]}).json() == {"received": "[1]"}


def test_serve_help_shows_registered_models() -> None:
    code, output = invoke("serve", "--help")
    assert code == 0
    assert "--model NAME[:VERSION|:ALIAS]" in output
    assert "--home DIRECTORY" in output
    assert "scorehost serve score.py --model sklearn_mnist:production --model encoder:3" in output
    assert "SCOREHOST_MODELS=sklearn_mnist:production,encoder:3" in output


def test_model_with_model_dir_is_a_usage_error(tmp_path: Path) -> None:
    code, output = invoke("serve", MISSING, "--model", "sklearn_mnist", "--model-dir", str(tmp_path))
    assert code == 2, output
    assert "Error: --model and --model-dir cannot be used together" in output
