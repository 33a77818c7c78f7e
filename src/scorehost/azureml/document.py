"""An Azure ML YAML file read with the line of every field, and `--set key.path=value` overrides.

Errors about a project file must name the file and the line, as `az ml` does, so the file is composed
node by node (PyYAML keeps each node's position) instead of loaded straight into dicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scorehost.errors import ProjectFileError

__all__ = ["Document", "FieldPath", "apply_overrides", "read_document"]

FieldPath = tuple[str | int, ...]
_MAX_BYTES = 4 * 1024 * 1024  # a project file is a few hundred bytes; anything this big is not one


@dataclass(slots=True)
class Document:
    """A YAML mapping with the line (1-based) where each field was written; overrides have line 0."""

    path: Path
    data: dict[str, Any]
    lines: dict[FieldPath, int] = field(default_factory=dict)
    overridden: set[FieldPath] = field(default_factory=set)

    @property
    def folder(self) -> Path:
        """Where relative paths in the file start from, as `az ml` resolves them."""
        return self.path.parent

    def where(self, at: FieldPath) -> str:
        """`endpoint.yml, line 4` (or `--set name=...`) for the field at `at`, or its nearest parent."""
        for end in range(len(at), 0, -1):
            if at[:end] in self.overridden:
                return f"{self.path.name} (--set {dotted(at[:end])})"
            line = self.lines.get(at[:end])
            if line:
                return f"{self.path}, line {line}"
        return str(self.path)

    def error(self, at: FieldPath, message: str) -> ProjectFileError:
        return ProjectFileError(f"{self.where(at)}: {message}")


def dotted(at: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in at)


def read_document(path: Path, overrides: Sequence[str] = ()) -> Document:
    """The YAML mapping in `path`, its overrides applied; ProjectFileError names what cannot be read and where."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ProjectFileError(f"{path}: {path.stat().st_size} bytes is too large for an Azure ML YAML file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectFileError(f"{path}: no such file; give the path of the YAML file to -f") from None
    except IsADirectoryError:
        raise ProjectFileError(f"{path} is a folder; -f takes the YAML file itself") from None
    except UnicodeDecodeError as error:
        raise ProjectFileError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise ProjectFileError(f"{path}: cannot be read ({error.strerror})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ProjectFileError(f"{path}: the file is empty; it needs at least a name")
        document = Document(path, {}, {})
        value = _Builder(loader, document).build(node, ())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ProjectFileError(f"{path}{line}: not valid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise ProjectFileError(f"{path}: not valid YAML: {error}") from None
    finally:
        loader.dispose()
    if not isinstance(value, dict):
        raise ProjectFileError(f"{path}, line {node.start_mark.line + 1}: the file must hold a mapping of fields")
    document.data = value
    apply_overrides(document, overrides)
    return document


_MAX_NODES = 100_000  # a project file has dozens; aliases can multiply a small file into millions ("billion laughs")


@dataclass(slots=True)
class _Builder:
    """Builds the values of a composed document, recording each field's line."""

    loader: yaml.SafeLoader
    document: Document
    nodes: int = 0
    open: set[int] = field(default_factory=set)  # the mappings and lists being built: an alias back to one loops

    def build(self, node: yaml.Node, at: FieldPath) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise ProjectFileError(
                f"{self.document.path}: more than {_MAX_NODES} values once its aliases (*name) are expanded; "
                "this is not a project file"
            )
        self.document.lines[at] = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.open:
            raise ProjectFileError(
                f"{self.document.path}, line {node.start_mark.line + 1}: an alias (*name) refers to the mapping "
                "or list that holds it"
            )
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*at, index)) for index, item in enumerate(node.value)]
            return self._mapping(node, at)
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, at: FieldPath) -> dict[str, Any]:
        explicit = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        self.loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor): merged pairs come first
        merged = len(node.value) - explicit
        result: dict[str, Any] = {}
        written: dict[str, int] = {}  # explicit keys and their lines: a merged key may be overridden, not these
        path = self.document.path
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ProjectFileError(f"{path}, line {line}: field names are text, not {key!r}")
            if index >= merged:
                if key in written:
                    raise ProjectFileError(
                        f"{path}, line {line}: {dotted((*at, key))} is given twice (first on line {written[key]}); "
                        "keep one"
                    )
                written[key] = line
            result[key] = self.build(value_node, (*at, key))
            self.document.lines[(*at, key)] = line
        return result


_PART = re.compile(r"([^.\[\]]+)((?:\[[0-9]+\])*)")


def _parse_path(text: str) -> FieldPath:
    """`a.b.0.c` or `a.b[0].c` as the parts of a field path."""
    parts: list[str | int] = []
    for piece in text.split("."):
        match = _PART.fullmatch(piece)
        if match is None:
            raise ProjectFileError(f"--set {text!r}: give a field path like request_settings.request_timeout_ms=3000")
        name, indexes = match.groups()
        parts.append(int(name) if re.fullmatch(r"[0-9]+", name) else name)
        parts.extend(int(index) for index in re.findall(r"[0-9]+", indexes))
    return tuple(parts)


def apply_overrides(document: Document, overrides: Sequence[str]) -> None:
    """`--set a.b=value` as `az ml` has it: the value is text (the checks read `2` as a number where the schema
    wants one, as Azure's do), or a mapping or list in YAML's flow style (`{a: 1}`, `[x, y]`); missing mappings
    on the way are created; a field under a reference string is refused, as `az ml` refuses it."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ProjectFileError(f"--set {override!r} is not KEY=VALUE (e.g. --set instance_count=2)")
        at = _parse_path(key.strip())
        value: Any = text
        if text.lstrip().startswith(("{", "[")):  # a whole mapping or list, in YAML's flow style
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ProjectFileError(f"--set {override!r}: the value is not a YAML mapping or list") from None
        target: Any = document.data
        for index, part in enumerate(at[:-1]):
            following = at[index + 1]
            if isinstance(target, dict) and isinstance(part, str):
                if target.get(part) is None:
                    target[part] = [] if isinstance(following, int) else {}
                elif not isinstance(target[part], dict | list):
                    whole = dotted(at[: index + 1])
                    raise ProjectFileError(
                        f"--set {override!r}: {whole} is {target[part]!r}, not a mapping; --set cannot change "
                        f"fields inside it (set the whole field: --set {whole}=...)"
                    )
                target = target[part]
            elif isinstance(target, list) and isinstance(part, int) and part < len(target):
                target = target[part]
            else:
                raise ProjectFileError(f"--set {override!r}: {dotted(at[: index + 1])} is not a field that can hold it")
        last = at[-1]
        if isinstance(target, dict) and isinstance(last, str):
            target[last] = value
        elif isinstance(target, list) and isinstance(last, int) and last <= len(target):
            if last == len(target):
                target.append(value)
            else:
                target[last] = value
        else:
            raise ProjectFileError(f"--set {override!r}: {dotted(at)} is not a field that can hold it")
        document.overridden.add(at)
