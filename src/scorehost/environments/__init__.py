"""Deployments' Python environments: conda or requirements files, built with uv into a shared cache.

`read_environment_file()` reads a file into an `EnvironmentSpec`; `ensure_environment()` builds it once (under a
lock, shared by every deployment that declares the same) and returns the `BuiltEnvironment` whose interpreter runs
the scoring worker; scorehost's own code reaches it through a `.pth` file, never installed there.
"""

from __future__ import annotations

from scorehost.environments.builder import BuiltEnvironment, ensure_environment, find_environment
from scorehost.environments.cache import list_environments, prune, remove_environment
from scorehost.environments.conda import CondaDependency, map_conda_dependency
from scorehost.environments.interpreters import Interpreter, choose_python, find_interpreters
from scorehost.environments.spec import EnvironmentSpec, read_environment_file

__all__ = [
    "BuiltEnvironment",
    "CondaDependency",
    "EnvironmentSpec",
    "Interpreter",
    "choose_python",
    "ensure_environment",
    "find_environment",
    "find_interpreters",
    "list_environments",
    "map_conda_dependency",
    "prune",
    "read_environment_file",
    "remove_environment",
]
