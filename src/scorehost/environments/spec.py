"""An environment's specification: the Python version and requirements a conda or requirements file declares,
normalized so that files declaring the same thing share one key (and one built environment)."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.environments.pep508 import parse_requirement
from scorehost.environments.reqfile import PipLines, read_pip_lines, read_requirements_file
from scorehost.environments.runtime import OVERRIDES, package_folder, runtime_requirements

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
    def from_json(cls, data: dict[str, Any]) -> EnvironmentSpec:
        return cls(
            python=data.get("python"),
            requirements=tuple(data.get("requirements", ())),
            index_options=tuple(data.get("index_options", ())),
            skipped=tuple(data.get("skipped", ())),
            provided=tuple(data.get("provided", ())),
            source=str(data.get("source", "")),
            notes=tuple(data.get("notes", ())),
        )


def read_environment_file(path: Path) -> EnvironmentSpec:
    """Read a conda environment YAML (.yml, .yaml) or a requirements.txt (anything else); InvalidEnvironment
    names the file, the line and the fix."""
    path = Path(path).absolute()
    if path.suffix.lower() in (".yml", ".yaml"):
        from scorehost.environments.conda import read_conda_file

        conda = read_conda_file(path)
        return EnvironmentSpec._from_pip(conda.pip, python=conda.python, source=str(path), skipped=tuple(conda.skipped))
    return EnvironmentSpec._from_pip(read_requirements_file(path), python=None, source=str(path))
