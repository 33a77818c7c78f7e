"""What scorehost itself needs inside every environment: its core requirements, and its own code.

Its code is not installed there: a `.pth` file in the environment names a folder that holds one symlink,
`scorehost`, to the running scorehost package, so `import scorehost` works and nothing else of scorehost's own
virtual environment leaks in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from scorehost.environments.pep508 import Requirement, parse_requirement
from scorehost.errors import EnvironmentProblem

__all__ = ["OVERRIDES", "PTH_NAME", "package_folder", "runtime_folder", "runtime_requirements"]

# Versions forced over whatever a package pins (uv's --override). inference-schema before 1.6 pins wrapt 1.12,
# whose import needs inspect.formatargspec, gone since Python 3.11 (every interpreter scorehost runs on): with
# wrapt 1.14 or newer (the same API) every release of inference-schema works, as environments need.
OVERRIDES = ("wrapt>=1.14",)

PTH_NAME = "_scorehost_runtime.pth"
# Core requirements that only the side building environments uses, never the scoring worker inside one.
_BUILDER_ONLY = frozenset({"uv"})
# The user's version wins: scorehost copes with any inference-schema, and scripts often pin one.
_USER_WINS = frozenset({"inference-schema"})


def package_folder() -> Path:
    """The folder of the running scorehost package (what the runtime symlink points at)."""
    import scorehost

    return Path(scorehost.__file__).parent.resolve()


@cache
def _core_requirements() -> tuple[Requirement, ...]:
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires("scorehost") or []
    except PackageNotFoundError:
        raise EnvironmentProblem(
            "scorehost's package metadata is missing, so its runtime requirements are unknown; build environments "
            "from an installed scorehost (pip install scorehost), not from inside one"
        ) from None
    parsed = (parse_requirement(line) for line in declared if not re.search(r"\bextra\s*==", line))
    return tuple(requirement for requirement in parsed if requirement.name not in _BUILDER_ONLY)


def _database_driver() -> tuple[Requirement, ...]:
    """The `postgres` extra's driver when the workspace database is PostgreSQL (`SCOREHOST_REGISTRY_URL`): a
    deployment's `serve` lays its models out from that database with the environment's own Python."""
    from importlib.metadata import PackageNotFoundError, requires

    url = os.environ.get("SCOREHOST_REGISTRY_URL", "").strip().lower()
    if not url.startswith(("postgresql", "postgres:")):
        return ()
    try:
        declared = requires("scorehost") or []
    except PackageNotFoundError:
        return ()
    extra = (line.split(";", 1)[0] for line in declared if re.search(r"""\bextra\s*==\s*["']postgres["']""", line))
    return tuple(parse_requirement(line) for line in extra)


def runtime_requirements(user_requirements: Iterable[str] = ()) -> tuple[str, ...]:
    """scorehost's core requirements, as installed beside `user_requirements` (sorted, normalized), and the
    workspace database's driver where it is a server."""
    named = set()
    for text in user_requirements:
        with contextlib.suppress(ValueError):  # -e paths and bare URLs name no project we could compare
            named.add(parse_requirement(text).name)
    needed = (*_core_requirements(), *_database_driver())
    return tuple(sorted(str(req) for req in needed if not (req.name in _USER_WINS and req.name in named)))


def runtime_digest() -> str:
    """Names the runtime folder of this scorehost installation (its package's path)."""
    return hashlib.sha256(str(package_folder()).encode()).hexdigest()[:16]


def runtime_folder(home: Path) -> Path:
    """`<home>/environments/runtime/<digest>/`, holding only the `scorehost` symlink; made (or mended) here."""
    folder = home / "environments" / "runtime" / runtime_digest()
    link = folder / "scorehost"
    target = package_folder()
    with contextlib.suppress(OSError):
        if link.readlink() == target:
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".scorehost.{os.urandom(6).hex()}.tmp"
    scratch.symlink_to(target, target_is_directory=True)
    os.replace(scratch, link)  # atomic: a worker starting now sees the old link or the new one
    return folder
