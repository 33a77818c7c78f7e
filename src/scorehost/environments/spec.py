"""An environment's specification: the Python version and requirements a conda or requirements file declares,
normalized so that files declaring the same thing share one key (and one built environment)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.environments.pep508 import parse_requirement
from scorehost.environments.reqfile import PipLines, read_pip_lines, read_requirements_file
from scorehost.environments.runtime import OVERRIDES, package_folder, runtime_requirements
from scorehost.errors import InvalidEnvironment

__all__ = ["PROVIDED_BY_SCOREHOST", "EnvironmentSpec", "read_environment_file"]

# The Azure ML inference server itself: scorehost takes its place, and its old flask/werkzeug pins would clash.
PROVIDED_BY_SCOREHOST = frozenset({"azureml-inference-server-http", "azureml-defaults"})
_KEY_FORMAT = 1  # changes when what the key covers changes, so old environments are not mistaken for new ones


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an environment holds: `python` ("3.11"; None: the version scorehost runs on) and `requirements`
    (normalized PEP 508, as declared); `skipped` and `provided` are what is deliberately not installed."""

    python: str | None = None
    requirements: tuple[str, ...] = ()
    index_options: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    provided: tuple[str, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = ()

    @classmethod
    def from_requirements(
        cls,
        requirements: tuple[str, ...] | list[str],
        python: str | None = None,
        source: str = "",
        index_options: tuple[str, ...] = (),
    ) -> EnvironmentSpec:
        """A spec from requirement lines (pip's format, relative paths from the current folder)."""
        lines = read_pip_lines(
            enumerate(requirements, start=1), source=Path(source or "<requirements>"), base=Path.cwd()
        )
        return cls._from_pip(lines, python=python, source=source, extra_options=index_options)

    @classmethod
    def _from_pip(
        cls,
        lines: PipLines,
        *,
        python: str | None,
        source: str,
        skipped: tuple[str, ...] = (),
        extra_options: tuple[str, ...] = (),
    ) -> EnvironmentSpec:
        kept: list[str] = []
        provided: list[str] = []
        for requirement in lines.requirements:
            try:
                name = parse_requirement(requirement).name
            except ValueError:  # -e paths and bare URLs: installed as written
                name = ""
            target = provided if name in PROVIDED_BY_SCOREHOST else kept
            if requirement not in target:
                target.append(requirement)
        return cls(
            python=python.strip() if python and python.strip() else None,
            requirements=tuple(kept),
            index_options=lines.index_options + tuple(extra_options),
            skipped=tuple(dict.fromkeys(skipped)),
            provided=tuple(provided),
            source=source,
            notes=tuple(lines.notes),
        )

    def runtime_requirements(self) -> tuple[str, ...]:
        """scorehost's own requirements, installed beside these (inference-schema's left to the user's pin)."""
        return runtime_requirements(self.requirements)

    def key(self) -> str:
        """16 hex digits over everything the built environment depends on, and nothing else (not the file)."""
        payload = {
            "format": _KEY_FORMAT,
            "python": self.python or f"{sys.version_info.major}.{sys.version_info.minor}",
            "requirements": sorted(set(self.requirements)),
            "index_options": list(self.index_options),
            "runtime": list(self.runtime_requirements()),
            "overrides": list(OVERRIDES),
            "scorehost": str(package_folder()),  # the runtime symlink each environment's .pth leads to
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def warnings(self) -> list[str]:
        """One line for each thing declared that will not be installed as written."""
        lines = []
        if self.skipped:
            lines.append(f"skipped conda packages with no PyPI equivalent: {', '.join(self.skipped)}")
        if self.provided:
            lines.append(
                f"not installed, scorehost is the server: {', '.join(self.provided)} "
                "(scorehost serves the script itself)"
            )
        return lines + list(self.notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "requirements": list(self.requirements),
            "index_options": list(self.index_options),
            "skipped": list(self.skipped),
            "provided": list(self.provided),
            "source": self.source,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Any) -> EnvironmentSpec:
        """The specification `to_json()` wrote, checked: it reaches uv as a requirements file and command-line
        options, so anything but requirements and the index options the readers produce is InvalidEnvironment."""
        if not isinstance(data, Mapping):
            raise InvalidEnvironment("python_environment must be an object, as `scorehost environments build` reads it")
        python = data.get("python")
        if python is not None and not (isinstance(python, str) and _PYTHON.fullmatch(python)):
            raise InvalidEnvironment(f"python_environment.python must be a version like 3.11, not {python!r}")
        lists = {name: _texts(data, name) for name in ("requirements", "index_options", "skipped", "provided", "notes")}
        for requirement in lists["requirements"]:
            _check_requirement(requirement)
        _check_index_options(lists["index_options"])
        return cls(
            python=python,
            requirements=lists["requirements"],
            index_options=lists["index_options"],
            skipped=lists["skipped"],
            provided=lists["provided"],
            source=str(data.get("source", "")),
            notes=lists["notes"],
        )


_PYTHON = re.compile(r"3(\.[0-9]{1,3}){1,2}")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
# uv's options, as the readers write them (reqfile.py): with a value, or alone.
_VALUE_OPTIONS = frozenset(
    {
        "--index-url",
        "--extra-index-url",
        "--find-links",
        "--allow-insecure-host",
        "--no-binary",
        "--only-binary",
        "--prerelease",
    }
)
_FLAG_OPTIONS = frozenset({"--no-index"})


def _texts(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name, ())
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise InvalidEnvironment(f"python_environment.{name} must be a list of strings")
    if any("\n" in item or "\r" in item or "\0" in item for item in value):
        raise InvalidEnvironment(f"python_environment.{name}: an entry holds a line break or NUL")
    return tuple(value)


def _check_requirement(text: str) -> None:
    """A normalized requirement, a URL, an absolute path, or `-e /absolute/folder`: what the readers produce."""
    if text.startswith("-e "):
        if not Path(text[3:]).is_absolute():
            raise InvalidEnvironment(f"python_environment.requirements: {text!r} must name an absolute folder")
        return
    if _URL.match(text) or (Path(text).is_absolute() and not text.startswith("-")):
        return
    try:
        parse_requirement(text)
    except ValueError as error:
        raise InvalidEnvironment(f"python_environment.requirements: {text!r} is not a requirement ({error})") from None


def _check_index_options(words: tuple[str, ...]) -> None:
    expecting: str | None = None
    for word in words:
        if expecting is not None:
            if word.startswith("-"):
                raise InvalidEnvironment(f"python_environment.index_options: {expecting} needs a value")
            expecting = None
        elif word in _VALUE_OPTIONS:
            expecting = word
        elif word not in _FLAG_OPTIONS:
            raise InvalidEnvironment(
                f"python_environment.index_options: {word!r} is not one of "
                f"{', '.join(sorted(_VALUE_OPTIONS | _FLAG_OPTIONS))}"
            )
    if expecting is not None:
        raise InvalidEnvironment(f"python_environment.index_options: {expecting} needs a value")


def read_environment_file(path: Path) -> EnvironmentSpec:
    """Read a conda environment YAML (.yml, .yaml) or a requirements.txt (anything else); InvalidEnvironment
    names the file, the line and the fix."""
    path = Path(path).absolute()
    if path.suffix.lower() in (".yml", ".yaml"):
        from scorehost.environments.conda import read_conda_file

        conda = read_conda_file(path)
        return EnvironmentSpec._from_pip(conda.pip, python=conda.python, source=str(path), skipped=tuple(conda.skipped))
    return EnvironmentSpec._from_pip(read_requirements_file(path), python=None, source=str(path))
