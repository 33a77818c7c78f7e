"""`scorehost environments build|list|show|prune` in real processes, and the cache they manage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scorehost.environments import EnvironmentSpec, ensure_environment, list_environments, prune, remove_environment
from scorehost.environments.interpreters import find_interpreters

# The group as `scorehost environments` runs it (the lead registers it in the `scorehost` command).
_MAIN = (
    "from scorehost.cli.environments import environments_group; environments_group(prog_name='scorehost environments')"
)
_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS", "LINES")


@dataclass
class Ran:
    code: int
    out: str
    err: str


def environments(*args: str, home: Path) -> Ran:
    env = {name: value for name, value in os.environ.items() if name not in _TERMINAL_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", _MAIN, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_build_list_show_prune(tmp_path: Path, home: Path) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text(
        "name: demo\ndependencies:\n  - python=3.9\n  - mkl\n  - pip:\n    - azureml-defaults\n    - six==1.16.0\n"
    )
    refused = environments("build", str(conda), home=home)
    assert refused.code == 1
    assert "asks for Python 3.9, but scorehost's runtime needs 3.11 or newer" in refused.err
    assert "--nearest-python" in refused.err
    assert "warning: skipped conda packages with no PyPI equivalent: mkl" in refused.err

    built = environments("build", str(conda), "--nearest-python", home=home)
    assert built.code == 0, built.err
    key = built.out.split()[1]
    assert built.out.startswith(f"environment {key} (built in ")
    assert "  python:   3.11." in built.out
    assert "warning: not installed, scorehost is the server: azureml-defaults" in built.err
    assert "asks for Python 3.9; built with 3.11" in built.err

    again = environments("build", str(conda), "--nearest-python", "--json", home=home)
    assert again.code == 0, again.err
    data = json.loads(again.out)
    assert data["cached"] is True
    assert data["key"] == key
    assert data["packages"]["six"] == "1.16.0"

    listed = environments("list", home=home)
    header, row = listed.out.splitlines()
    assert header.split() == ["KEY", "PYTHON", "PACKAGES", "SIZE", "CREATED", "SOURCE", "USED", "BY"]
    assert row.startswith(key)
    assert str(conda) in row
    assert row.endswith(" -")
    assert [item["key"] for item in json.loads(environments("list", "--json", home=home).out)] == [key]

    shown = environments("show", key[:6], home=home)
    assert shown.code == 0, shown.err
    assert f"key            {key}" in shown.out
    assert any(line.split() == ["six", "1.16.0"] for line in shown.out.splitlines())
    assert json.loads(environments("show", key, "--json", home=home).out)["spec"]["skipped"] == ["mkl"]
    unknown = environments("show", "ffff", home=home)
    assert unknown.code == 1
    assert "no environment 'ffff'" in unknown.err

    dry = environments("prune", "--dry-run", home=home)
    assert dry.out.startswith(f"would remove {key} (Python 3.11.")
    assert len(list_environments(home)) == 1
    pruned = environments("prune", "--json", home=home)
    assert [item["key"] for item in json.loads(pruned.out)["removed"]] == [key]
    assert list_environments(home) == []
    assert environments("list", home=home).err.startswith("no environments built")


def test_an_unreadable_file_is_one_message(tmp_path: Path, home: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\nsix >= banana\n")
    ran = environments("build", str(requirements), home=home)
    assert ran.code == 1
    assert ran.err.startswith(f"Error: {requirements}, line 2: 'six >= banana' is not a requirement uv can read")
    assert "Traceback" not in ran.err


def test_prune_keeps_what_is_in_use_and_clears_killed_builds(home: Path) -> None:
    kept = ensure_environment(EnvironmentSpec.from_requirements(["six==1.16.0"]), home)
    other = ensure_environment(EnvironmentSpec.from_requirements(["six==1.15.0"]), home)
    half = home / "environments" / ("0" * 16)
    (half / "venv").mkdir(parents=True)  # what a killed build leaves: no environment.json
    assert {built.key for built in list_environments(home)} == {kept.key, other.key}  # not the half one
    assert prune(home, {kept.key}, dry_run=True) == [other]
    assert half.exists()
    assert prune(home, {kept.key}) == [other]
    assert not half.exists()
    assert not other.path.exists()
    assert sorted(path.name for path in (home / "environments").iterdir()) == sorted(
        [kept.key, f"{kept.key}.lock", "runtime"]
    )
    assert remove_environment(home, kept.key) is True
    assert remove_environment(home, kept.key) is False
    assert list_environments(home) == []


@pytest.mark.skipif(not [i for i in find_interpreters(ask_uv=False) if i.minor_version == "3.12"], reason="no 3.12")
def test_scorehosts_runtime_works_on_another_python(home: Path) -> None:
    built = ensure_environment(EnvironmentSpec.from_requirements(["six==1.16.0"], python="3.12"), home)
    assert built.python_version.startswith("3.12.")
    code = "import scorehost.http.server, scorehost.host, scorehost.cli, sys; print(sys.version_info[:2])"
    ran = subprocess.run([str(built.python), "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "(3, 12)"
