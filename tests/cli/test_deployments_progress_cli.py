"""`scorehost deployments create/update/show/logs` as a newcomer sees them (issue 19): the instances and the
script's init() log while it starts, then how to call it; a failure in one line with the command for the full
log; a table for `show` with every instance; and a word when a command starts the control plane itself.

One real control plane per module (its own workspace and gateway port) and real serve processes; the commands
run in-process (no interpreter start each), but for the one that must run beside another.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from _control_plane import free_port
from click.testing import CliRunner, Result

from scorehost.cli import cli
from scorehost.cli.deployments import deployments_group
from scorehost.deploy.controlplane import daemon

SCRIPTS = Path(__file__).parents[1] / "scripts"

pytestmark = pytest.mark.timeout(240)


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("SCOREHOST_")}


def _run(home: Path, *args: str, code: int = 0) -> Result:
    done = CliRunner().invoke(cli, [*args, "--home", str(home)])
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    assert done.exit_code == code, f"{args}: exit {done.exit_code}\n{done.output}"
    return done


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    home, port = tmp_path_factory.mktemp("progress-home"), free_port()
    _run(home, "controlplane", "start", "--api-port", "0", "--gateway-port", str(port))
    try:
        yield home, port
    finally:
        _run(home, "controlplane", "stop")


def test_create_shows_the_instances_and_init_log_then_how_to_call_it(workspace: tuple[Path, int]) -> None:
    home, port = workspace
    _run(home, "endpoints", "create", "progress")
    created = _run(home, "deployments", "create", "progress", "blue", "--script", str(SCRIPTS / "prints.py"))
    assert created.stdout == "progress/blue generation 1: ready\n"  # stdout: the outcome alone, for scripts
    lines = created.stderr.splitlines()
    assert lines[0] == "progress/blue generation 1: starting"
    assert "progress/blue generation 1: 1 of 1 instance ready" in lines
    assert any(line.startswith("  ") and line.endswith("hello from init") for line in lines)  # init()'s print
    assert not [line for line in lines if "scorehost.access" in line]  # the readiness probes are not news
    uri = f"http://127.0.0.1:{port}/endpoints/progress/score"
    assert lines[-3:] == [
        f"scoring URI: {uri}",
        f"try it:      curl {uri} -H 'Content-Type: application/json' -H \"Authorization: Bearer $KEY\" "
        "-d '{\"data\": ...}'",
        "             (KEY: `scorehost endpoints keys progress`)",
    ]
    # A second deployment takes no traffic yet: its curl line picks it by name.
    green = _run(home, "deployments", "create", "progress", "green", "--script", str(SCRIPTS / "echo.py"))
    assert f"scoring URI: {uri}  (green takes 0% of its traffic)" in green.stderr
    assert "-H 'azureml-model-deployment: green'" in green.stderr


def test_show_is_a_table_with_every_instance(workspace: tuple[Path, int]) -> None:
    home, _ = workspace
    _run(home, "endpoints", "create", "tables", "--auth", "none")
    script = ["--script", str(SCRIPTS / "echo.py"), "--instances", "2", "--env", "SECRET_TOKEN=hidden"]
    _run(home, "deployments", "create", "tables", "blue", *script)
    shown = _shown(home, "tables", "blue")
    deadline = time.monotonic() + 60
    while [i["state"] for i in shown["status"]["instances"]] != ["ready", "ready"]:  # ready: one worker answers
        assert time.monotonic() < deadline, shown
        shown = _shown(home, "tables", "blue")
    instances = shown["status"]["instances"]
    assert [i["name"] for i in instances] == ["blue-1-1", "blue-1-2"]
    assert len({i["pid"] for i in instances}) == 2
    assert shown["environment"] == {"SECRET_TOKEN": "hidden"}  # --json: the API's object, as before

    table = _run(home, "deployments", "show", "tables", "blue").stdout
    assert table.startswith("tables/blue: ready (local backend)\n")
    assert "  environment   SECRET_TOKEN\n" in table
    assert "hidden" not in table  # names only: values may be secrets
    assert re.search(r"^1 +serving, declared +ready +2 of 2 ready$", table, re.MULTILINE), table
    for instance in instances:
        assert re.search(rf"^{instance['name']} +1 +{instance['pid']} +ready +0$", table, re.MULTILINE), table


def _shown(home: Path, endpoint: str, name: str) -> Any:
    return json.loads(_run(home, "deployments", "show", endpoint, name, "--json").stdout)


def test_a_failed_update_says_why_in_one_line_and_where_the_log_is(workspace: tuple[Path, int]) -> None:
    home, _ = workspace
    _run(home, "endpoints", "create", "failing", "--auth", "none")
    _run(home, "deployments", "create", "failing", "blue", "--script", str(SCRIPTS / "echo.py"))
    failed = _run(home, "deployments", "update", "failing", "blue", "--script", str(SCRIPTS / "init_fails.py"), code=1)
    assert "  RuntimeError: model file is corrupt" in failed.stderr.splitlines()  # the traceback, as it came
    *_, reason, where = failed.stderr.splitlines()
    assert reason.startswith("Error: failing/blue generation 2 cannot start: ")
    assert reason.endswith("init() in init_fails.py raised RuntimeError: model file is corrupt")
    assert where == "the full log: `scorehost deployments logs failing blue --generation 2`"

    log = _run(home, "deployments", "logs", "failing", "blue", "--generation", "2").stdout
    assert 'raise RuntimeError("model file is corrupt")' in log
    missing = _run(home, "deployments", "logs", "failing", "blue", "--generation", "9", code=1)
    assert "failing/blue generation 9 has no log here" in missing.stderr

    table = _run(home, "deployments", "show", "failing", "blue").stdout
    assert re.search(r"^1 +serving +ready +1 of 1 ready$", table, re.MULTILINE), table
    assert re.search(r"^2 +declared +failed +- +cannot start: exited with code 3", table, re.MULTILINE), table
    assert table.endswith("the full log of generation 2: `scorehost deployments logs failing blue --generation 2`\n")


def test_an_update_superseded_while_it_waits_says_so_at_once(workspace: tuple[Path, int], tmp_path: Path) -> None:
    """Told as soon as the other update is declared, not when it is ready (nor after this one's --timeout)."""
    home, _ = workspace
    _run(home, "endpoints", "create", "racing", "--auth", "none")
    _run(home, "deployments", "create", "racing", "blue", "--script", str(SCRIPTS / "echo.py"))
    slow = ["--script", str(SCRIPTS / "waits_in_init.py"), "--env", f"RELEASE_INIT={tmp_path / 'release'}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "scorehost", "deployments", "update", "racing", "blue", *slow, "--timeout", "150"]
        + ["--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )
    try:
        deadline = time.monotonic() + 60
        while _shown(home, "racing", "blue")["generation"] != 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        _run(home, "deployments", "update", "racing", "blue", *slow, "--no-wait")  # generation 3, as slow
        _, stderr = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 1
    assert stderr.endswith(
        "Error: racing/blue generation 2 was superseded by generation 3 (started by another update); "
        "`scorehost deployments show racing blue` follows it\n"
    )
    assert _shown(home, "racing", "blue")["status"]["serving_generation"] == 1  # generation 3 is still starting
    (tmp_path / "release").touch()


def test_json_prints_the_deployment_and_nothing_else(workspace: tuple[Path, int]) -> None:
    home, _ = workspace
    _run(home, "endpoints", "create", "quiet", "--auth", "none")
    created = _run(home, "deployments", "create", "quiet", "blue", "--script", str(SCRIPTS / "echo.py"), "--json")
    assert created.stderr == ""
    deployment = json.loads(created.stdout)
    assert (deployment["generation"], deployment["status"]["state"]) == (1, "ready")


def test_a_command_that_starts_the_control_plane_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started on free ports here (the defaults, 5100 and 5080, are anyone's in a parallel run)."""
    port = free_port()
    free = functools.partial(daemon.start_control_plane, api_port=0, gateway_port=port)
    monkeypatch.setattr(daemon, "start_control_plane", free)
    try:
        first = CliRunner().invoke(cli, ["endpoints", "create", "fresh", "--home", str(tmp_path)])
        assert first.exit_code == 0, first.output
        said = re.fullmatch(
            rf"started the control plane on http://127\.0\.0\.1:\d+ and the gateway on http://127\.0\.0\.1:{port} "
            r"\(background; `scorehost controlplane stop` stops them\)\n",
            first.stderr,
        )
        assert said, first.stderr
        again = CliRunner().invoke(cli, ["endpoints", "list", "--home", str(tmp_path)])
        assert (again.exit_code, again.stderr) == (0, "")  # running already: nothing to say
    finally:
        daemon.stop_control_plane(tmp_path)


def test_every_option_has_a_line_and_create_groups_them() -> None:
    for name, command in deployments_group.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"deployments {name} {param.opts[0]} has no help"
    shown = CliRunner().invoke(cli, ["deployments", "create", "--help"]).output
    headings = [line for line in shown.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["Options:", "Azure ML deployment YAML:", "Data collection:", "Ray backend:"]
    rows = ("\n  --script PATH", "\n  --instances", "\nData collection:", "\nRay backend:", "\n  --ray-address")
    order = [shown.index(text) for text in rows]
    assert order == sorted(order)
    words = " ".join(shown.split())  # as wrapped for any width
    assert "NAME: 3-32 letters, digits and '-', starting with a letter and not ending with '-'" in words
    assert "  scorehost deployments create mnist blue --script score.py --model sklearn_mnist:1 --instances 2" in shown
    logs = CliRunner().invoke(cli, ["deployments", "logs", "--help"]).output
    assert re.search(r"-n, --lines INTEGER RANGE +How many last lines", logs), logs
