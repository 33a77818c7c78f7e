"""The modules of the code folder a script imports, found by reading, never executing.

`run_input=auto` decides from what the script's code reads, and a script that keeps
`json.loads(raw)["data"]` in a helper beside it (`from preprocess import parse`) reads the key all the
same. Imports are followed through the source with `ast` only: nothing is imported or executed, a module
is looked for only inside the script's folder (paths resolved, symlinks included, and kept inside it), and
the walk is bounded in files and bytes. Standard-library and installed modules are simply not found there.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "FolderModule", "imported_folder_modules"]

MAX_FILES = 50  # helpers read per script, at most
MAX_FILE_BYTES = 1 << 20  # a bigger helper is not read

Parts = tuple[str, ...]


@dataclass(frozen=True)
class FolderModule:
    """A parsed module of the code folder that the script imports, directly or through other such modules."""

    name: str  # its path relative to the folder, '/'-separated: "helper.py", "helpers/__init__.py"
    tree: ast.Module
    imported_by: tuple[str, ...]  # the chain back to the script, nearest first: ("a.py", "score.py")
    package: Parts  # the package its relative imports resolve against: () at the top of the folder

    def where(self, line: int) -> str:
        """`helpers/parse.py line 7 (imported by a.py, imported by score.py)`."""
        return f"{self.name} line {line} (imported by {', imported by '.join(self.imported_by)})"


def imported_folder_modules(
    script: Path, tree: ast.Module, *, max_files: int = MAX_FILES, max_bytes: int = MAX_FILE_BYTES
) -> Iterator[FolderModule]:
    """The modules of the script's folder that its parsed source `tree` imports, transitively, breadth first.

    Imports anywhere count (inside functions, `try` blocks). A module that is not in the folder, a file that
    cannot be read or parsed, or one over `max_bytes` is skipped; each file is read once (cycles end), and
    at most `max_files` are."""
    root = script.parent.resolve()
    seen = {script.resolve()}
    importer = FolderModule(script.name, tree, (), ())
    queue: deque[FolderModule] = deque([importer])
    while queue:
        importer = queue.popleft()
        for parts in _imports(importer.tree, importer.package):
            found = _find(root, parts)
            if found is None or found[0] in seen:
                continue
            path, name, package = found
            seen.add(path)
            if len(seen) > max_files + 1:  # the script is in `seen` too
                return
            parsed = _parse(path, max_bytes)
            if parsed is not None:
                module = FolderModule(name, parsed, (importer.name, *importer.imported_by), package)
                yield module
                queue.append(module)


def _imports(tree: ast.Module, package: Parts) -> list[Parts]:
    """Every module the source may import, as name parts, in source order; a relative import that climbs
    above the folder is left out. `from a import b` gives `a` and `a.b` (b may be a submodule)."""
    found: list[tuple[int, int, Parts]] = []
    for node in ast.walk(tree):
        names: list[Parts] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                names += _with_parents(tuple(alias.name.split(".")))
        elif isinstance(node, ast.ImportFrom) and node.level - 1 <= len(package):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = base + (tuple(node.module.split(".")) if node.module else ())
            names += _with_parents(module)
            names += [(*module, alias.name) for alias in node.names if alias.name != "*"]
        else:
            continue
        found += [(node.lineno, node.col_offset, parts) for parts in names]
    return [parts for _, _, parts in sorted(found)]


def _with_parents(parts: Parts) -> list[Parts]:
    """`a.b.c` imports `a`, `a.b` and `a.b.c`."""
    return [parts[:end] for end in range(1, len(parts) + 1)]


def _find(root: Path, parts: Parts) -> tuple[Path, str, Parts] | None:
    """The file of module `parts` inside `root` (a package's `__init__.py` first, as Python looks), as its
    resolved path, its name relative to the folder and its package; None when it is not in the folder."""
    if not parts:
        return None
    candidates = (
        (Path(*parts, "__init__.py"), parts),
        (Path(*parts[:-1], parts[-1] + ".py"), parts[:-1]),
    )
    for relative, package in candidates:
        try:
            path = (root / relative).resolve(strict=True)
        except (OSError, RuntimeError):  # absent, unreadable, or a symlink loop
            continue
        if path.is_relative_to(root) and path.is_file():
            return path, relative.as_posix(), package
    return None


def _parse(path: Path, max_bytes: int) -> ast.Module | None:
    try:
        if path.stat().st_size > max_bytes:
            return None
        return ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
