"""Choosing the interpreter an environment is built with, among those on this machine (none is downloaded)."""

from __future__ import annotations

import platform
import sys

import pytest

from scorehost.environments import Interpreter, choose_python, find_interpreters
from scorehost.environments.interpreters import own_interpreter
from scorehost.errors import PythonNotFound


@pytest.fixture(scope="module")
def found() -> list[Interpreter]:
    return find_interpreters()


def _minor(found: list[Interpreter], minor: str) -> list[Interpreter]:
    return [i for i in found if i.minor_version == minor]


def test_the_interpreters_found_include_scorehosts_own(found: list[Interpreter]) -> None:
    assert own_interpreter() in found
    assert own_interpreter().version == platform.python_version()
    assert len({i.path for i in found}) == len(found)
    assert all(i.path.is_absolute() and i.path.exists() for i in found)


def test_no_request_takes_scorehosts_own_interpreter() -> None:
    assert choose_python(None) == own_interpreter()


def test_a_present_version_is_taken(found: list[Interpreter]) -> None:
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert choose_python(own) == own_interpreter()  # of several 3.11s, the one scorehost runs on
    for minor in ("3.12", "3.13"):
        if _minor(found, minor):
            chosen = choose_python(minor)
            assert chosen.minor_version == minor
            assert chosen.parts == max(i.parts for i in _minor(found, minor))


def test_a_python_older_than_the_runtime_supports_is_refused(found: list[Interpreter]) -> None:
    with pytest.raises(PythonNotFound) as caught:
        choose_python("3.9", nearest=False)
    message = caught.value.message
    assert message.startswith(
        "the environment asks for Python 3.9, but scorehost's runtime needs 3.11 or newer; interpreters here: "
    )
    for interpreter in found:
        assert f"{interpreter.version} ({interpreter.path})" in message
    assert "pass --nearest-python to build it with 3.11" in message


def test_nearest_takes_the_closest_supported_version() -> None:
    chosen = choose_python("3.9", nearest=True)
    assert chosen.minor_version == "3.11"
    assert chosen == own_interpreter()  # the nearest minor version, and of its interpreters scorehost's own
    assert choose_python(">=3.8").minor_version == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_an_absent_version_names_uv_python_install() -> None:
    with pytest.raises(PythonNotFound, match=r"no interpreter of that version; .*`uv python install 3\.99`"):
        choose_python("3.99")
    with pytest.raises(PythonNotFound, match="needs 3.11 or newer"):
        choose_python("<3.10", nearest=False)
