"""`scorehost controlplane|endpoints|deployments|invoke` as a user runs them: real processes, one workspace."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[1] / "scripts"
WHOAMI = SCRIPTS / "whoami"

pytestmark = pytest.mark.timeout(420)  # a whole user session, several deployments started


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scorehost(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )
    assert done.returncode == code, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def control_plane() -> Iterator[int]:
    port = _free_port()
    started = scorehost("controlplane", "start", "--api-port", "0", "--gateway-port", str(port))
    assert f"gateway: http://127.0.0.1:{port}" in started.stdout
    yield port
    scorehost("controlplane", "stop")


def test_a_user_session(control_plane: int) -> None:
    port = control_plane
    status = scorehost("controlplane", "status").stdout
    assert status.startswith("running: API http://127.0.0.1:")
    assert "control plane" in status
    assert "gateway" in status
    assert scorehost("endpoints", "create", "mnist").stdout.splitlines() == [
        f"created mnist: http://127.0.0.1:{port}/endpoints/mnist/score",
        "keys: `scorehost endpoints keys mnist`",
    ]
    created = scorehost(
        "deployments", "create", "mnist", "blue", "--script", str(WHOAMI / "score.py"), "--env", "DEPLOYMENT_NAME=blue"
    )
    assert created.stdout == "mnist/blue generation 1: ready\n"
    answer = json.loads(scorehost("invoke", "mnist", "--data", "[1, 2]").stdout)
    assert (answer["deployment"], answer["received"]) == ("blue", "[1,2]")

    listed = json.loads(scorehost("endpoints", "list", "--json").stdout)
    assert [(e["name"], e["traffic"]) for e in listed] == [("mnist", {"blue": 100})]
    # --home before the command, as after it (and as SCOREHOST_HOME): what `endpoints list --json` printed above
    assert json.loads(scorehost("endpoints", "--home", os.environ["SCOREHOST_HOME"], "list", "--json").stdout) == listed
    table = scorehost("endpoints", "show", "mnist").stdout
    assert re.search(r"^blue +100 +1 +ready +local +-$", table, re.M), table
    assert f"  docs URI     http://127.0.0.1:{port}/endpoints/mnist/docs\n  mirror       none\n" in table
    assert re.search(r"^  created +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", table, re.M), table
    keys = json.loads(scorehost("endpoints", "keys", "mnist", "--json").stdout)
    rotated = json.loads(scorehost("endpoints", "keys", "mnist", "--regenerate", "secondary", "--json").stdout)
    assert rotated["primary"] == keys["primary"]
    assert rotated["secondary"] != keys["secondary"]

    refused = scorehost("endpoints", "traffic", "mnist", "blue=90", code=1)
    assert refused.stderr == "Error: traffic must sum to 100, not 90 (blue=90)\n"
    wrong_key = scorehost("invoke", "mnist", "--data", "1", "--key", "nope", code=1)
    assert "Get the keys with `scorehost endpoints keys mnist`" in wrong_key.stderr
    missing = scorehost("invoke", "other", "--data", "1", code=1)
    assert missing.stderr.startswith("Error: no endpoint named 'other' (endpoints: mnist)")
    assert "ready: 1 worker(s) serving" in scorehost("deployments", "logs", "mnist", "blue", "-n", "50").stdout
    assert scorehost("invoke", "mnist", code=2).stderr.endswith("give exactly one of --data JSON or --file FILE\n")

    _mirror_and_a_failed_update()
    scorehost("endpoints", "delete", "mnist")
    assert json.loads(scorehost("endpoints", "list", "--json").stdout) == []


def _mirror_and_a_failed_update() -> None:
    """`endpoints traffic --mirror` says what it set; `endpoints show` names the mirror, the generation that serves,
    the one that failed, why in one line, and the command that prints its log."""
    scorehost("deployments", "create", "mnist", "green", "--script", str(WHOAMI / "score.py"))
    mirrored = scorehost("endpoints", "traffic", "mnist", "blue=100", "--mirror", "green=10")
    assert mirrored.stdout == "mnist: blue=100, mirror green=10%\n"
    failing = ["--script", str(SCRIPTS / "init_fails.py"), "--code-dir", str(SCRIPTS), "--no-wait"]
    scorehost("deployments", "update", "mnist", "green", *failing)
    deadline = time.monotonic() + 60
    while not json.loads(scorehost("deployments", "show", "mnist", "green", "--json").stdout)["failure"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    table = scorehost("endpoints", "show", "mnist").stdout
    assert "  mirror       10% of requests copied to green\n" in table
    assert re.search(r"^green +0 +1 \(2 failed\) +ready +local +-$", table, re.M), table
    hint = "scorehost deployments logs mnist green --generation 2"
    problem = (
        "green: generation 2 failed: exited with code 3: the entry script cannot be served: init() in init_fails.py "
        f"raised RuntimeError: model file is corrupt (its log: `{hint}`)"
    )
    assert table.endswith(f"\n\n{problem}\n"), table  # one line, no traceback in the table
    assert "model file is corrupt" in scorehost(*hint.split()[1:]).stdout


def test_status_without_a_control_plane(tmp_path: Path) -> None:
    stopped = scorehost("controlplane", "status", code=1)
    assert "not running" in stopped.stdout
    assert scorehost("controlplane", "stop").stdout == "the control plane was not running\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create", "mnist", "blue", "--min-replicas", "2"],
            "Ray options (--ray-address, --min-replicas, ...) need --backend ray",
        ),
        (
            ["create", "mnist", "blue", "--backend", "ray"],
            "--backend ray needs the cluster's address: --ray-address HOST:PORT",
        ),
        (
            ["update", "mnist", "blue", "--backend", "local", "--num-cpus", "1"],
            "--num-cpus is a Ray option: it needs --backend ray",
        ),
    ],
)
def test_ray_options_without_the_ray_backend_are_usage_errors(args: list[str], message: str) -> None:
    """Refused before any control plane is asked (none runs here)."""
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", "deployments", *args, "--script", str(WHOAMI / "score.py")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_deployments_create_help_explains_the_backends() -> None:
    shown = scorehost("deployments", "create", "--help").stdout
    for flag in ("--backend [local|ray]", "--ray-address", "--min-replicas", "--max-queued", "--num-cpus"):
        assert flag in shown
    assert "scorehost[ray]" in shown


def test_an_update_superseded_by_a_later_one_is_told_at_once(control_plane: int, tmp_path: Path) -> None:
    """Issue 16.15: the update that lost waited its whole --timeout, then failed with "not ready (state ready)"."""
    scripts = WHOAMI.parent
    scorehost("deployments", "create", "mnist", "blue", "--script", str(WHOAMI / "score.py"), code=1)  # no endpoint
    scorehost("endpoints", "create", "mnist", "--auth", "none")
    scorehost("deployments", "create", "mnist", "blue", "--script", str(WHOAMI / "score.py"))
    slow = subprocess.Popen(  # its init() waits for a file that never comes
        [sys.executable, "-m", "scorehost", "deployments", "update", "mnist", "blue", "--timeout", "150"]
        + ["--script", str(scripts / "waits_in_init.py"), "--code-dir", str(scripts)]
        + ["--env", f"RELEASE_INIT={tmp_path / 'never'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while json.loads(scorehost("deployments", "list", "mnist", "--json").stdout)[0]["generation"] != 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        winner = scorehost("deployments", "update", "mnist", "blue", "--script", str(WHOAMI / "score.py"))
        assert winner.stdout == "mnist/blue generation 3: ready\n"
        _, stderr = slow.communicate(timeout=30)  # at once, not after its --timeout of 150 s
    finally:
        slow.kill()
    assert slow.returncode == 1
    assert "mnist/blue generation 2 was superseded by generation 3 (started by another update)" in stderr
    [listed] = json.loads(scorehost("deployments", "list", "mnist", "--json").stdout)
    assert (listed["generation"], listed["serving_generation"], listed["status"]["state"]) == (3, 3, "ready")
