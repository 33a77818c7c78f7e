"""`scorehost console`: the address and a one-time sign-in link that a real browser session can use once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _control_plane import free_port

from scorehost.deploy.controlplane.daemon import start_control_plane, stop_control_plane


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("console-cli") / "home"
    start_control_plane(folder, api_port=0, gateway_port=free_port())
    try:
        yield folder
    finally:
        stop_control_plane(folder)


def _console(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run(
        [sys.executable, "-m", "scorehost", "console", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def test_json_gives_the_address_and_a_link_that_signs_in_once(home: Path) -> None:
    done = _console(home, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["console"].startswith("http://127.0.0.1:")
    assert shown["console"].endswith("/console/")
    with httpx.Client() as browser:
        first = browser.get(shown["signin"])
        assert first.status_code == 303
        assert browser.get(shown["console"]).status_code == 200
    with httpx.Client() as other:
        assert "used already" in other.get(shown["signin"]).text


def test_without_a_display_it_prints_the_link_and_opens_nothing(home: Path) -> None:
    done = _console(home)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("console: http://127.0.0.1:")
    assert lines[1].startswith("sign in (once, within two minutes): http://127.0.0.1:")
    assert "/console/signin/" in lines[1]
    assert done.stderr == ""
