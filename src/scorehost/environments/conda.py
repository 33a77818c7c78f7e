"""Azure ML conda environment files, read as the PyPI requirements uv can install.

Conda's own packages map to their PyPI names (`pytorch` → `torch`) and version rules (`=1.2` is a prefix:
`==1.2.*`); the conda-only libraries that PyPI wheels bundle (CUDA, MKL, OpenSSL, ...) are skipped and named in a
warning; `python=3.X` picks the interpreter; the `pip:` list is pip's format, read as a requirements file.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scorehost.environments.pep508 import canonical_name, parse_requirement
from scorehost.environments.reqfile import PipLines, read_pip_lines
from scorehost.errors import InvalidEnvironment

__all__ = ["CondaDependency", "CondaFile", "map_conda_dependency", "read_conda_file"]

PYPI_NAMES = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "tensorflow-gpu": "tensorflow",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "py-lightgbm": "lightgbm",
}
TOOLS = frozenset({"pip", "setuptools", "wheel", "conda", "mamba"})  # uv needs none of them in the environment
# Conda packages of native libraries (and conda's own mutexes) with no PyPI project: the wheels bundle them.
CONDA_ONLY = (
    "cudatoolkit", "cudatoolkit-dev", "cudnn", "nccl", "cutensor", "cuda-*", "magma-*", "libcu*", "libnv*",
    "pytorch-cuda", "pytorch-mutex", "cpuonly", "mkl", "mkl-service", "mkl-fft", "mkl-random", "mkl-include",
    "blas", "libblas", "libcblas", "liblapack", "openblas", "libopenblas", "intel-openmp", "llvm-openmp", "libgcc",
    "libgcc-ng", "libgfortran*", "libgomp", "libstdcxx-ng", "_*", "openssl", "ca-certificates", "certifi-conda",
    "libffi", "zlib", "libzlib", "xz", "bzip2", "lz4-c", "zstd", "sqlite", "readline", "tk", "ncurses", "libuuid",
    "libnsl", "libxcrypt", "ld-impl-linux-64", "vs2015-runtime", "vc", "vc14-runtime", "ucrt", "libcurl", "krb5",
    "libedit", "libiconv", "icu", "python-abi", "tbb", "libprotobuf", "libjpeg-turbo", "jpeg", "libpng", "libtiff",
    "libwebp", "freetype", "fontconfig", "expat", "libxml2",
)  # fmt: skip

ON_PYPI_TOO = frozenset({"cuda-python"})  # matches a pattern above, yet is a PyPI project of the same name

_SPEC = re.compile(
    r"^(?:(?P<channel>[^:\s\[]+)::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9._-]*)(?P<bracket>\s*\[[^\]]*\])?(?P<rest>.*)$"
)


@dataclass(frozen=True)
class CondaDependency:
    """One entry of `dependencies:` as scorehost reads it: a PyPI requirement, the Python version, a skipped
    conda-only package or a packaging tool that uv does not need."""

    kind: Literal["requirement", "python", "skipped", "tool"]
    value: str  # the requirement, the Python version ("3.9", ">=3.8"), or the conda package's name


@dataclass
class CondaFile:
    """What a conda environment file asks for, in PyPI terms."""

    name: str = ""
    python: str | None = None
    pip: PipLines = field(default_factory=PipLines)
    skipped: list[str] = field(default_factory=list)


def map_conda_dependency(text: str) -> CondaDependency:
    """Map one conda dependency (`numpy=1.26`, `conda-forge::pytorch>=2`, `mkl`) to what uv installs; ValueError
    says why one cannot be read."""
    match = _SPEC.match(text.strip())
    if not match:
        raise ValueError("it is not a conda package name with an optional version")
    conda_name = match.group("name").lower()
    name = canonical_name(conda_name)
    if name in TOOLS:
        return CondaDependency("tool", conda_name)
    conda_only = (
        fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(conda_name, pattern) for pattern in CONDA_ONLY
    )
    if name not in ON_PYPI_TOO and any(conda_only):
        return CondaDependency("skipped", conda_name)
    version = _version(match.group("rest"), match.group("bracket") or "")
    if name == "python":
        return CondaDependency("python", _python_version(version))
    requirement = PYPI_NAMES.get(name, name) + version
    return CondaDependency("requirement", str(parse_requirement(requirement)))


def _version(rest: str, bracket: str) -> str:
    """The PEP 440 specifier of conda's version (and build) text after the name."""
    options = dict(re.findall(r"(\w+)\s*=\s*['\"]?([^'\",\]]*)['\"]?", bracket))
    spaced = bool(rest) and rest[0].isspace()
    rest = re.sub(r"\s*,\s*", ",", re.sub(r"(==|>=|<=|!=|~=|<|>|=)\s+", r"\1", rest.strip()))
    if "version" in options:
        rest, spaced = options["version"].strip(), True
    if not rest:
        return ""
    if "|" in rest:
        raise ValueError("conda's '|' (either version) has no pip equivalent; pick one, or write it under pip:")
    if spaced:  # `numpy 1.26.4 py311h_0`, `numpy >=1.26`: version, then the build string
        version, _, build = rest.partition(" ")
        fuzzy = False
    elif rest.startswith("=") and not rest.startswith("=="):  # `numpy=1.26`, `numpy=1.26.4=py311h_0`
        version, _, build = rest[1:].partition("=")
        fuzzy = not build  # conda: `=1.26` matches 1.26.x; with a build string the version is exact
    elif rest.startswith("=="):
        version, _, build = rest[2:].partition("=")
        fuzzy = False
    else:  # `>=1.2,<2`
        version, fuzzy = rest, False
    clauses = []
    for clause in version.split(","):
        clause = clause.strip()
        operator = re.match(r"(===|~=|==|!=|<=|>=|<|>|=)?", clause).group()  # type: ignore[union-attr]
        number = clause[len(operator) :].strip().rstrip(".")
        star = number.endswith("*")
        number = number.rstrip("*").rstrip(".")
        if not number:
            continue
        if operator in ("", "=", "=="):
            operator = "=="
            number += ".*" if star or fuzzy else ""
        elif operator == "!=" and star:
            number += ".*"
        clauses.append(operator + number)
    return ",".join(clauses)


def _python_version(specifier: str) -> str:
    """`==3.9.*` → "3.9", `==3.11.4` → "3.11.4"; a range (`>=3.8`) stays a specifier."""
    if re.fullmatch(r"==\d+(\.\d+)*(\.\*)?", specifier):
        return specifier[2:].removesuffix(".*")
    return specifier


def read_conda_file(path: Path) -> CondaFile:
    """Read a conda environment YAML file; InvalidEnvironment names the file, the line and the fix."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidEnvironment(f"{path}: no such file; give the path of a conda environment file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidEnvironment(f"{path}: cannot be read ({error}); give a readable UTF-8 YAML file") from None
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text, Loader=yaml.SafeLoader)  # the same document again, with line numbers
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InvalidEnvironment(
            f"{where}: not valid YAML ({problem}); fix the file's indentation or quoting"
        ) from None
    if not isinstance(data, dict):
        raise InvalidEnvironment(f"{path}: not a conda environment file; it needs a mapping with `dependencies:`")
    dependencies = data.get("dependencies") or []
    lines = _item_lines(tree, "dependencies")
    if not isinstance(dependencies, list):
        raise InvalidEnvironment(f"{path}, line {_key_line(tree, 'dependencies')}: `dependencies:` must be a list")
    result = CondaFile(name=str(data.get("name") or ""))
    for index, entry in enumerate(dependencies):
        where = f"{path}, line {lines[index] if index < len(lines) else _key_line(tree, 'dependencies')}"
        if isinstance(entry, dict) and list(entry) == ["pip"]:
            result.pip.extend(_pip_section(entry["pip"], tree, index, path, where))
            continue
        if not isinstance(entry, str):
            raise InvalidEnvironment(
                f"{where}: dependency {entry!r} is not a string; write `- name=version` (or one `- pip:` list)"
            )
        try:
            mapped = map_conda_dependency(entry)
        except ValueError as error:
            raise InvalidEnvironment(f"{where}: {entry!r} cannot be read ({error})") from None
        if mapped.kind == "python":
            result.python = mapped.value or None
        elif mapped.kind == "skipped":
            result.skipped.append(mapped.value)
        elif mapped.kind == "requirement":
            result.pip.requirements.append(mapped.value)
    return result


def _pip_section(entries: Any, tree: Any, index: int, path: Path, where: str) -> PipLines:
    if not isinstance(entries, list) or not all(isinstance(item, str) for item in entries):
        raise InvalidEnvironment(f"{where}: `pip:` must be a list of requirement strings")
    node = tree.value[_key_index(tree, "dependencies")][1].value[index].value[0][1]
    numbers = [item.start_mark.line + 1 for item in node.value]
    return read_pip_lines(zip(numbers, entries, strict=True), source=path, base=path.parent.absolute())


def _key_index(tree: Any, key: str) -> int:
    return next(index for index, (name, _) in enumerate(tree.value) if name.value == key)


def _key_line(tree: Any, key: str) -> int:
    try:
        return int(tree.value[_key_index(tree, key)][0].start_mark.line) + 1
    except (StopIteration, AttributeError):
        return 1


def _item_lines(tree: Any, key: str) -> list[int]:
    try:
        return [item.start_mark.line + 1 for item in tree.value[_key_index(tree, key)][1].value]
    except (StopIteration, AttributeError, TypeError):
        return []
