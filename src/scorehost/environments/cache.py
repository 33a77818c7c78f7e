"""The built environments of a workspace: list them, remove one, prune those no deployment uses."""

from __future__ import annotations

import re
import shutil
from collections.abc import Collection
from pathlib import Path

from scorehost.environments.builder import BuiltEnvironment, environment_lock, environments_folder, find_environment

__all__ = ["list_environments", "prune", "remove_environment"]

_KEY = re.compile(r"^[0-9a-f]{16}$")


def list_environments(home: Path) -> list[BuiltEnvironment]:
    """The ready environments, oldest first (those being built, or half built, are left out)."""
    found = [find_environment(home, key) for key in _keys(home)]
    return sorted((built for built in found if built is not None), key=lambda built: (built.created_at, built.key))


def remove_environment(home: Path, key: str) -> bool:
    """Remove environment `key` (waiting for a build of it to end); False if there was none."""
    folder = environments_folder(home) / key
    if not _KEY.match(key) or not folder.is_dir():
        return False
    with environment_lock(home, key):
        if not folder.is_dir():
            return False
        shutil.rmtree(folder)
        (environments_folder(home) / f"{key}.lock").unlink(missing_ok=True)
    return True


def prune(home: Path, in_use: Collection[str], *, dry_run: bool = False) -> list[BuiltEnvironment]:
    """Remove the ready environments whose key is not `in_use`, and the folders of killed builds (those whose lock
    is free); returns the ready ones removed (or, with `dry_run`, that would be)."""
    removed = []
    for key in _keys(home):
        if key in in_use:
            continue
        with environment_lock(home, key, wait=False) as held:
            if held is None:  # being built right now: someone wants it
                continue
            built = find_environment(home, key)
            if built is not None:
                removed.append(built)
            if not dry_run:
                shutil.rmtree(environments_folder(home) / key, ignore_errors=True)
                (environments_folder(home) / f"{key}.lock").unlink(missing_ok=True)  # while held: see the lock
    return sorted(removed, key=lambda built: (built.created_at, built.key))


def _keys(home: Path) -> list[str]:
    folder = environments_folder(home)
    if not folder.is_dir():
        return []
    names = {entry.name.removesuffix(".lock") for entry in folder.iterdir()}  # lock files of failed builds too
    return sorted(name for name in names if _KEY.match(name))
