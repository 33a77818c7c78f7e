"""One PEP 508 requirement, read with `packaging` and written back in one canonical form (so that equal
requirements give equal environment keys); uv does the real resolution."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as _Parsed
from packaging.utils import canonicalize_name

__all__ = ["Requirement", "canonical_name", "parse_requirement"]


def canonical_name(name: str) -> str:
    """A project name as PyPI compares them (PEP 503): lower case, runs of `-`, `_` and `.` made one `-`."""
    return str(canonicalize_name(name))


@dataclass(frozen=True)
class Requirement:
    """A parsed requirement: `name[extras]<specifier>; marker` or `name[extras] @ url ; marker`."""

    name: str
    extras: tuple[str, ...] = ()
    specifier: str = ""
    url: str = ""
    marker: str = ""

    def __str__(self) -> str:
        text = self.name + (f"[{','.join(self.extras)}]" if self.extras else "")
        text += f" @ {self.url}" if self.url else self.specifier
        if self.marker:
            text += f" ; {self.marker}" if self.url else f"; {self.marker}"
        return text


def parse_requirement(text: str) -> Requirement:
    """Read one PEP 508 requirement; ValueError says what is wrong with it."""
    try:
        parsed = _Parsed(text.strip())
    except InvalidRequirement as error:
        raise ValueError(str(error).splitlines()[0]) from None
    if parsed.url and not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://\S+$", parsed.url):
        raise ValueError(f"{parsed.url!r} after '@' is not a URL")
    return Requirement(
        canonical_name(parsed.name),
        tuple(sorted(canonical_name(extra) for extra in parsed.extras)),
        ",".join(sorted(str(clause) for clause in parsed.specifier)),
        parsed.url or "",
        str(parsed.marker) if parsed.marker is not None else "",
    )
