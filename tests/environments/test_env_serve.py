"""`scorehost serve --environment FILE`: the server builds the environment, then runs in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SCRIPTS, kill, start_server, wait_ready

pytestmark = pytest.mark.timeout(300)


def test_serve_with_an_environment_runs_in_it(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n")
    home = tmp_path / "home"
    server = start_server(
        [str(SCRIPTS / "environment_versions.py"), "--environment", str(requirements), "--home", str(home)]
    )
    try:
        wait_ready(server, timeout=240)
        with server.client() as client:
            answer = client.post("/score", json={"data": 1}).json()
    finally:
        kill(server)
    assert answer["six"] == "1.16.0"
    assert answer["pytest_visible"] is False  # nothing of the test's environment but scorehost
    assert answer["python"].startswith(str(home / "environments"))


def test_serve_with_an_environment_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text("dependencies:\n  - python=3.9\n")
    server = start_server(["score.py", "--environment", str(conda), "--home", str(tmp_path / "home")])
    try:
        assert server.process.wait(60) == 2
        assert server.reader is not None
        server.reader.join(5)
    finally:
        kill(server)
    assert "Python 3.9" in server.log
    assert "--nearest-python" in server.log
    assert "Traceback" not in server.log
