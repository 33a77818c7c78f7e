"""pip's requirements format: a requirements.txt file, or the `pip:` list of a conda file, read line by line.

Requirements come out normalized (pep508), local paths made absolute, and the options that choose where packages
come from (`--index-url`, `--extra-index-url`, `--find-links`, `--pre`, ...) turned into uv's own options.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from scorehost.environments.pep508 import parse_requirement
from scorehost.errors import InvalidEnvironment

__all__ = ["PipLines", "read_pip_lines", "read_requirements_file"]

# pip option → uv option; True: takes a value.
_VALUE_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--allow-insecure-host",
    "--no-binary": "--no-binary",
    "--only-binary": "--only-binary",
}
_FLAG_OPTIONS: dict[str, tuple[str, ...]] = {
    "--pre": ("--prerelease", "allow"),
    "--no-index": ("--no-index",),
    "--prefer-binary": (),  # uv's resolver has no such preference; harmless to drop
}
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|zip|tar\.bz2)$", re.IGNORECASE)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FIX = "write it as NAME, NAME==VERSION or NAME>=X,<Y (PEP 508)"


@dataclass
class PipLines:
    """What a run of pip lines asks for."""

    requirements: list[str] = field(default_factory=list)
    options: list[tuple[str, ...]] = field(default_factory=list)  # uv's options, each with its value
    notes: list[str] = field(default_factory=list)

    @property
    def index_options(self) -> tuple[str, ...]:
        return tuple(word for option in self.options for word in option)

    def add_option(self, *words: str) -> None:
        if words and words not in self.options:
            self.options.append(words)

    def extend(self, other: PipLines) -> None:
        self.requirements += other.requirements
        for option in other.options:
            self.add_option(*option)
        self.notes += [note for note in other.notes if note not in self.notes]


def read_requirements_file(path: Path, *, _seen: frozenset[Path] = frozenset()) -> PipLines:
    """Read a requirements.txt file (and the files its `-r` lines name); InvalidEnvironment names file and line."""
    path = path.absolute()
    if path in _seen:
        raise InvalidEnvironment(f"{path}: included again by its own -r lines; remove the loop")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidEnvironment(f"{path}: no such file; give the path of a requirements.txt or conda file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidEnvironment(f"{path}: cannot be read ({error}); give a readable UTF-8 text file") from None
    return read_pip_lines(_logical_lines(text), source=path, base=path.parent, seen=_seen | {path})


def read_pip_lines(
    lines: Iterable[tuple[int, str]], *, source: Path, base: Path, seen: frozenset[Path] = frozenset()
) -> PipLines:
    """Read (line number, text) pairs in pip's format; relative paths are taken from `base`."""
    result = PipLines()
    for number, line in lines:
        where = f"{source}, line {number}"  # as the Azure ML YAML errors say it
        text = re.sub(r"(^|\s)#.*$", "", line).strip()  # pip's comments: '#' at the start or after a space
        if not text:
            continue
        if text.startswith("-"):
            option, _, value = text.partition(" ")
            _option(option, value.strip(), result, where=where, base=base, seen=seen)
            continue
        requirement, *options = re.split(r"\s+(?=--)", text)
        if any(not option.startswith("--hash") for option in options):
            raise InvalidEnvironment(
                f"{where}: per-requirement options {' '.join(options)} are not supported; drop them"
            )
        note = "--hash options dropped: uv checks hashes only when every requirement has one, and scorehost's have none"
        if options and note not in result.notes:
            result.notes.append(note)
        result.requirements.append(_requirement(requirement, where=where, base=base))
    return result


def _option(option: str, value: str, result: PipLines, *, where: str, base: Path, seen: frozenset[Path]) -> None:
    if "=" in option and option.startswith("--"):
        option, _, value = option.partition("=")
    elif len(option) > 2 and option[:2] in ("-r", "-e", "-i", "-f", "-c") and not value:
        option, value = option[:2], option[2:]  # -rfile.txt
    if option in ("-r", "--requirement"):
        if not value:
            raise InvalidEnvironment(f"{where}: {option} needs a file name; write `-r other.txt`")
        included = _local(value, base)
        if not included.is_file():
            raise InvalidEnvironment(f"{where}: {option} {value}: {included} does not exist; fix the path")
        result.extend(read_requirements_file(included, _seen=seen))
    elif option in ("-e", "--editable"):
        if not value or _URL.match(value):
            raise InvalidEnvironment(f"{where}: {option} {value} is not a local folder; install it without -e")
        path = _local(value, base)
        if not path.exists():
            raise InvalidEnvironment(f"{where}: {option} {value}: {path} does not exist; fix the path")
        result.requirements.append(f"-e {path}")
    elif option in _VALUE_OPTIONS:
        if not value:
            raise InvalidEnvironment(f"{where}: {option} needs a value")
        if option in ("-f", "--find-links") and not _URL.match(value):
            value = str(_local(value, base))
        result.add_option(_VALUE_OPTIONS[option], value)
    elif option in _FLAG_OPTIONS:
        result.add_option(*_FLAG_OPTIONS[option])
    elif option in ("-c", "--constraint"):
        raise InvalidEnvironment(f"{where}: constraints files are not supported; write their pins as requirements")
    else:
        raise InvalidEnvironment(
            f"{where}: pip option {option} is not supported; use requirements, -r, -e, --index-url, "
            "--extra-index-url, --find-links or --pre"
        )


def _requirement(text: str, *, where: str, base: Path) -> str:
    if _URL.match(text):  # a bare URL (git+https://...#egg=name, https://.../x.whl): uv reads it as written
        return text
    if text.startswith((".", "/", "~")) or _ARCHIVE.search(text):
        path = _local(text, base)
        if not path.exists():
            raise InvalidEnvironment(f"{where}: {text}: {path} does not exist; fix the path")
        return str(path)
    try:
        return str(parse_requirement(text))
    except ValueError as error:
        raise InvalidEnvironment(f"{where}: {text!r} is not a requirement uv can read ({error}); {_FIX}") from None


def _local(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).absolute()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their first line number; a line ending in a backslash continues on the next."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if pending is not None:
            number, line = pending[0], pending[1] + line
            pending = None
        if line.endswith("\\"):
            pending = (number, line[:-1])
            continue
        joined.append((number, line))
    if pending is not None:
        joined.append(pending)
    return joined
