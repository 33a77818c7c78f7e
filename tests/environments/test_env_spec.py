"""requirements.txt files, normalized specifications and their keys."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from scorehost.environments import EnvironmentSpec, read_environment_file
from scorehost.environments.pep508 import parse_requirement
from scorehost.errors import InvalidEnvironment


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Six==1.16.0", "six==1.16.0"),
        ("scikit_learn >= 1.2 , <2", "scikit-learn<2,>=1.2"),
        ("x (>=1)", "x>=1"),
        ("Foo[B, a]>=1", "foo[a,b]>=1"),
        ("uvloop<1,>=0.19;  sys_platform != 'win32'", 'uvloop<1,>=0.19; sys_platform != "win32"'),
        ("pkg @ https://example.com/pkg-1.0-py3-none-any.whl ; python_version >= '3.11'",
         'pkg @ https://example.com/pkg-1.0-py3-none-any.whl ; python_version >= "3.11"'),
        ("azureml.core", "azureml-core"),
    ],
)  # fmt: skip
def test_requirements_are_normalized(text: str, normal: str) -> None:
    assert str(parse_requirement(text)) == normal


@pytest.mark.parametrize("text", ["==1.0", "six ==", "six >= banana", "six>=1.2.*", "six[x", "six @ not-a-url"])
def test_unreadable_requirements(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each has its own reason
        parse_requirement(text)


def test_a_requirements_file(tmp_path: Path) -> None:
    _write(tmp_path / "libs" / "base.txt", "numpy>=1.26  # the base\n")
    (tmp_path / "libs" / "mylib").mkdir()
    _write(tmp_path / "wheels" / "tool-1.0-py3-none-any.whl", "")
    requirements = _write(
        tmp_path / "requirements.txt",
        """\
# served by scorehost
-r libs/base.txt
--extra-index-url https://download.pytorch.org/whl/cpu
-i https://pypi.org/simple
--pre
Scikit_Learn==1.5.2 \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
-e libs/mylib
./wheels/tool-1.0-py3-none-any.whl
azureml-defaults
pandas; python_version >= "3.11"
""",
    )
    spec = read_environment_file(requirements)
    assert spec.python is None
    assert spec.requirements == (
        "numpy>=1.26",
        "scikit-learn==1.5.2",
        f"-e {tmp_path / 'libs' / 'mylib'}",
        str(tmp_path / "wheels" / "tool-1.0-py3-none-any.whl"),
        'pandas; python_version >= "3.11"',
    )
    assert spec.index_options == (
        "--extra-index-url", "https://download.pytorch.org/whl/cpu", "--index-url", "https://pypi.org/simple",
        "--prerelease", "allow",
    )  # fmt: skip
    assert spec.provided == ("azureml-defaults",)
    assert any("--hash options dropped" in line for line in spec.warnings())


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("six\nsix >= banana\n", 2, "is not a requirement uv can read"),
        ("six\n\n-r missing.txt\n", 3, "missing.txt does not exist"),
        ("-e ./absent\n", 1, "does not exist"),
        ("./absent.whl\n", 1, "does not exist"),
        ("-c constraints.txt\n", 1, "constraints files are not supported"),
        ("six --global-option=x\n", 1, "per-requirement options"),
        ("--index-url\n", 1, "needs a value"),
    ],
)
def test_unreadable_requirements_files_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    requirements = _write(tmp_path / "requirements.txt", text)
    with pytest.raises(InvalidEnvironment) as caught:
        read_environment_file(requirements)
    assert caught.value.message.startswith(f"{requirements}, line {line}: ")
    assert message in caught.value.message


def test_an_including_loop_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", "-r b.txt\n")
    _write(tmp_path / "b.txt", "-r a.txt\n")
    with pytest.raises(InvalidEnvironment, match="included again"):
        read_environment_file(tmp_path / "a.txt")


def test_files_declaring_the_same_share_a_key(tmp_path: Path) -> None:
    conda = read_environment_file(
        _write(
            tmp_path / "a" / "conda.yml", "dependencies:\n  - pip\n  - pip:\n    - Six==1.16.0\n    - numpy>=1.2,<2\n"
        )
    )
    plain = read_environment_file(_write(tmp_path / "b" / "requirements.txt", "numpy <2, >=1.2\nsix==1.16.0\n"))
    same = EnvironmentSpec.from_requirements(["numpy>=1.2,<2", "six==1.16.0"], source="elsewhere")
    assert conda.source != plain.source
    assert conda.key() == plain.key() == same.key()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert EnvironmentSpec.from_requirements(["six==1.16.0", "numpy>=1.2,<2"], python=running).key() == same.key()
    assert EnvironmentSpec.from_requirements(["six==1.16.0", "numpy>=1.2,<2"], python="3.12").key() != same.key()
    assert EnvironmentSpec.from_requirements(["six==1.16.0"]).key() != same.key()
    with_index = EnvironmentSpec.from_requirements(["numpy>=1.2,<2", "six==1.16.0", "--pre"])
    assert with_index.key() != same.key()


def test_json_round_trip(tmp_path: Path) -> None:
    spec = read_environment_file(
        _write(
            tmp_path / "conda.yml",
            "dependencies:\n  - python=3.11\n  - mkl\n  - pip:\n    - azureml-defaults\n    - six\n",
        )
    )
    assert EnvironmentSpec.from_json(spec.to_json()) == spec
    assert EnvironmentSpec.from_json(spec.to_json()).key() == spec.key()


def test_scorehosts_runtime_is_installed_beside_the_users_requirements() -> None:
    runtime = EnvironmentSpec.from_requirements(["six"]).runtime_requirements()
    names = {parse_requirement(line).name for line in runtime}
    assert {"pydantic", "granian", "werkzeug", "inference-schema", "click"} <= names
    assert "uv" not in names  # only the side that builds environments runs uv
    assert not names & {"pytest", "ray", "scikit-learn"}  # extras stay out
    # The user's inference-schema wins: scorehost copes with any version.
    pinned = EnvironmentSpec.from_requirements(["inference-schema==1.5.1"]).runtime_requirements()
    assert "inference-schema" not in {parse_requirement(line).name for line in pinned}


def test_a_postgresql_workspace_puts_its_driver_in_every_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EnvironmentSpec.from_requirements(["six"])
    on_sqlite, key_on_sqlite = spec.runtime_requirements(), spec.key()
    assert not any(req.startswith("psycopg") for req in on_sqlite)
    monkeypatch.setenv("SCOREHOST_REGISTRY_URL", "postgresql+psycopg://scorehost:secret@db:5432/scorehost")
    added = set(spec.runtime_requirements()) - set(on_sqlite)
    assert [parse_requirement(req).name for req in added] == ["psycopg"]  # serve lays models out from there
    assert spec.key() != key_on_sqlite  # a different environment, built once
    assert "secret" not in repr(spec.to_json())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("six", "must be an object"),
        ({"python": 3.11}, "python must be a version"),
        ({"python": "3.11; rm -rf /"}, "python must be a version"),
        ({"requirements": "six"}, "requirements must be a list of strings"),
        ({"requirements": ["six\n--index-url http://evil"]}, "line break"),
        ({"requirements": ["--index-url http://evil"]}, "is not a requirement"),
        ({"requirements": ["-e relative/folder"]}, "absolute folder"),
        ({"index_options": ["--index-url"]}, "--index-url needs a value"),
        ({"index_options": ["--index-url", "--no-index"]}, "--index-url needs a value"),
        ({"index_options": ["--config-file", "/etc/x"]}, "'--config-file' is not one of"),
    ],
)
def test_a_specification_from_json_is_checked_before_uv_sees_it(data: object, message: str) -> None:
    with pytest.raises(InvalidEnvironment, match=re.escape(message)):
        EnvironmentSpec.from_json(data)


def test_what_the_readers_write_reads_back(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    requirements = _write(
        tmp_path / "requirements.txt",
        f"six==1.16.0\n-e {tmp_path / 'pkg'}\nhttps://example.com/x-1.0-py3-none-any.whl\n"
        "--extra-index-url https://example.com/simple\n--pre\n--no-index\n",
    )
    spec = read_environment_file(requirements)
    assert EnvironmentSpec.from_json(spec.to_json()) == spec
