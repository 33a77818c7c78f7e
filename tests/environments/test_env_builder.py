"""Real uv builds: the environment's interpreter sees its own libraries and scorehost's runtime, nothing of
scorehost's virtual environment; one build per key however many ask at once; failures leave nothing behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import SCRIPTS, kill, start_server, wait_ready

import scorehost
from scorehost.environments import BuiltEnvironment, EnvironmentSpec, ensure_environment, find_environment
from scorehost.environments.builder import environment_lock
from scorehost.errors import EnvironmentBuildFailed

SIX = ("six==1.16.0",)

# A child process that asks for the same environment and prints each progress line.
_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from scorehost.environments import EnvironmentSpec, ensure_environment

    spec = EnvironmentSpec.from_requirements(sys.argv[2:], source="child")
    built = ensure_environment(spec, Path(sys.argv[1]), progress=lambda line: print("progress:", line, flush=True))
    print("built:", built.key, built.created_at, flush=True)
    """
)


def _run(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_an_environment_holds_its_libraries_and_scorehosts_runtime_only(home: Path) -> None:
    lines: list[str] = []
    built = ensure_environment(
        EnvironmentSpec.from_requirements(SIX, source="requirements.txt"), home, progress=lines.append
    )
    assert built.path == home / "environments" / built.key
    assert built.python == built.path / "venv" / "bin" / "python"
    assert built.packages["six"] == "1.16.0"
    assert "pydantic" in built.packages
    assert "granian" in built.packages
    assert "scorehost" not in built.packages  # reached through the .pth file, not installed
    assert built.size_bytes > 1_000_000
    assert any(line.startswith("+ six==1.16.0") for line in lines)  # uv's own lines, as they came
    assert (built.path / "requirements.txt").read_text().startswith("six==1.16.0\n")
    assert "$ uv pip install" in (built.path / "build.log").read_text()

    checked = _run(
        built.python,
        "import importlib.util, json, six, scorehost, sys\n"
        "found = lambda name: importlib.util.find_spec(name) is not None\n"
        "print(json.dumps({'six': six.__version__, 'scorehost': scorehost.__file__, 'prefix': sys.prefix,\n"
        "  'pytest': found('pytest'), 'uv': found('uv')}))",
    )
    assert checked.returncode == 0, checked.stderr
    seen = json.loads(checked.stdout)
    assert seen["six"] == "1.16.0"
    runtime = Path(seen["scorehost"]).parent
    assert runtime.parent.parent == home / "environments" / "runtime"  # the symlink, not scorehost's own venv
    assert runtime.is_symlink()
    assert runtime.resolve() == Path(scorehost.__file__).parent.resolve()
    assert sorted(path.name for path in runtime.parent.iterdir()) == ["scorehost"]
    assert seen["prefix"] == str(built.path / "venv")
    assert not seen["pytest"]  # in scorehost's venv, not a runtime requirement: invisible here
    assert not seen["uv"]

    # Found again without uv: the ready marker, read back whole.
    assert find_environment(home, built.key) == built
    started = time.monotonic()
    again = ensure_environment(EnvironmentSpec.from_requirements(SIX, source="other.txt"), home)
    assert again == built
    assert time.monotonic() - started < 1


def test_the_scoring_worker_runs_in_the_environment(home: Path) -> None:
    built = ensure_environment(EnvironmentSpec.from_requirements(SIX), home)
    server = start_server([str(SCRIPTS / "environment_versions.py")], {"PYTHONNOUSERSITE": "1"}, python=built.python)
    try:
        wait_ready(server)
        answer = httpx.post(f"{server.url}/score", json={"data": 1}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"six": "1.16.0", "pytest_visible": False, "python": str(built.python)}
    finally:
        kill(server)


def test_threads_asking_at_once_build_once(home: Path) -> None:
    spec = EnvironmentSpec.from_requirements(SIX)
    lines: list[list[str]] = [[], []]
    results: list[BuiltEnvironment | BaseException] = []
    with environment_lock(home, spec.key()):  # both threads arrive while "another build" runs
        threads = [threading.Thread(target=lambda n=n: results.append(_ensure(spec, home, lines[n]))) for n in range(2)]
        for thread in threads:
            thread.start()
        _wait(lambda: all(any("waiting for another build" in line for line in seen) for seen in lines))
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    assert all(isinstance(result, BuiltEnvironment) for result in results), results
    assert results[0] == results[1]
    assert sum("creating a Python" in line for seen in lines for line in seen) == 1


def _ensure(spec: EnvironmentSpec, home: Path, lines: list[str]) -> BuiltEnvironment | BaseException:
    try:
        return ensure_environment(spec, home, progress=lines.append)
    except BaseException as error:  # noqa: BLE001 - handed to the test's thread
        return error


def test_processes_asking_at_once_build_once(home: Path) -> None:
    spec = EnvironmentSpec.from_requirements(SIX)
    with environment_lock(home, spec.key()):
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(home), *SIX],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs: list[list[str]] = [[], []]
        readers = [threading.Thread(target=_read, args=(child, outputs[n])) for n, child in enumerate(children)]
        for reader in readers:
            reader.start()
        _wait(lambda: all(any("waiting for another build" in line for line in seen) for seen in outputs))
    for child, reader in zip(children, readers, strict=True):
        assert child.wait(60) == 0, outputs
        reader.join(10)
    built = [line for seen in outputs for line in seen if line.startswith("built:")]
    assert len(built) == 2
    assert built[0] == built[1]
    assert sum("creating a Python" in line for seen in outputs for line in seen) == 1


def _read(child: subprocess.Popen[str], into: list[str]) -> None:
    assert child.stdout is not None
    with child.stdout:
        into.extend(line.rstrip("\n") for line in child.stdout)


def _wait(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_failed_build_leaves_nothing_and_a_later_one_works(home: Path) -> None:
    bad = EnvironmentSpec.from_requirements(["this-package-does-not-exist-xyz==1.0"], source="/x/requirements.txt")
    with pytest.raises(EnvironmentBuildFailed) as caught:
        ensure_environment(bad, home)
    message = caught.value.message
    assert message.startswith("/x/requirements.txt: uv could not build the environment")
    assert "this-package-does-not-exist-xyz" in message.split("\n", 1)[1]  # uv's own words
    assert "scorehost's runtime needs" not in message
    assert find_environment(home, bad.key()) is None
    assert not (home / "environments" / bad.key()).exists()
    assert ensure_environment(EnvironmentSpec.from_requirements(SIX), home).packages["six"] == "1.16.0"


def test_a_conflict_with_the_runtime_names_scorehosts_requirement(home: Path) -> None:
    spec = EnvironmentSpec.from_requirements(["pydantic<2"], source="conda.yml")
    with pytest.raises(EnvironmentBuildFailed) as caught:
        ensure_environment(spec, home)
    runtime = next(line for line in spec.runtime_requirements() if line.startswith("pydantic<"))
    assert (
        f"scorehost's runtime needs {runtime}: the environment cannot pin pydantic<2 outside it" in caught.value.message
    )
    assert not (home / "environments" / spec.key()).exists()


def test_a_killed_build_is_removed_and_built_again(home: Path) -> None:
    spec = EnvironmentSpec.from_requirements(SIX)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), *SIX], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert child.stdout is not None
    for line in child.stdout:  # killed once uv has started to fill the environment
        if "Creating virtual environment" in line or "Resolved" in line:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(30)
    child.stdout.close()
    folder = home / "environments" / spec.key()
    assert folder.is_dir()
    assert not (folder / "environment.json").exists()
    assert find_environment(home, spec.key()) is None
    lines: list[str] = []
    built = ensure_environment(spec, home, progress=lines.append)
    assert any("creating a Python" in line for line in lines)
    assert _run(built.python, "import six, scorehost").returncode == 0
