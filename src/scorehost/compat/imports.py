"""Make the `azureml.*` names entry scripts import resolve to scorehost's own, without touching the disk.

A finder at the END of `sys.meta_path` answers only for names no other finder found, so an installed
`azureml` SDK (or any real package of the same name) wins, except for the request and response modules:
`AMLRequest`, `AMLResponse` and `@rawhttp` are the server's contract with the script, and under scorehost the
server is scorehost, so a finder at the FRONT answers those (an installed `azureml-inference-server-http` or
`azureml-contrib-services` would otherwise hand the script classes that scorehost never passes). It resolves:

* `azureml`, `azureml.ai`, `azureml.contrib`, `azureml.contrib.services`, `azureml.core`,
  `azureml_inference_server_http`, `azureml_inference_server_http.api`: empty packages (`azureml.core` also
  offers `Model`, for `from azureml.core import Model`);
* `azureml.contrib.services.aml_request` and `azureml_inference_server_http.api.aml_request` →
  `scorehost.compat.aml_request`; the same for `aml_response`; `azureml.core.model` → `scorehost.compat.model`;
  `azureml.ai.monitoring` (and its `context`) → `scorehost.compat.monitoring`, answered at the front like the
  request and response modules: the data collector's rows must reach scorehost's store;
* `sklearn.externals.joblib` (and its submodules, which old pickles name) → the `joblib` package, with a
  warning: scikit-learn 0.23 removed it, yet the documentation's example still imports it.

Aliases are the target modules themselves (placed in `sys.modules` under the alias name), so
`@rawhttp` from either name sets the same flag.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["install_import_aliases", "uninstall_import_aliases"]

logger = logging.getLogger("scorehost.compat")

_PACKAGES = frozenset(
    {
        "azureml",
        "azureml.ai",
        "azureml.contrib",
        "azureml.contrib.services",
        "azureml.core",
        "azureml_inference_server_http",
        "azureml_inference_server_http.api",
    }
)
# Names a package offers lazily, as `from azureml.core import Model` expects.
_PACKAGE_EXPORTS = {"azureml.core": {"Model": "scorehost.compat.model"}}
_MODULES = {
    "azureml.ai.monitoring": "scorehost.compat.monitoring",
    "azureml.ai.monitoring.context": "scorehost.compat.monitoring.context",
    "azureml.contrib.services.aml_request": "scorehost.compat.aml_request",
    "azureml.contrib.services.aml_response": "scorehost.compat.aml_response",
    "azureml.core.model": "scorehost.compat.model",
    "azureml_inference_server_http.api.aml_request": "scorehost.compat.aml_request",
    "azureml_inference_server_http.api.aml_response": "scorehost.compat.aml_response",
}
_JOBLIB = "sklearn.externals.joblib"


def _target(fullname: str) -> str | None:
    if fullname in _MODULES:
        return _MODULES[fullname]
    if fullname == _JOBLIB or fullname.startswith(_JOBLIB + "."):
        return "joblib" + fullname[len(_JOBLIB) :]
    return None


class _EmptyPackage(Loader):
    """A package with no files, only there so that its aliased children can be imported."""

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exports = _PACKAGE_EXPORTS.get(module.__name__)
        if exports:

            def __getattr__(name: str) -> Any:
                if name in exports:
                    return getattr(importlib.import_module(exports[name]), name)
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

            setattr(module, "__getattr__", __getattr__)  # noqa: B010 -- a module-level __getattr__ (PEP 562)


class _Alias(Loader):
    """Loads a name as another module: the import system keeps whatever `exec_module` puts in sys.modules."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        target = importlib.import_module(self.target)
        if module.__name__ == _JOBLIB:
            logger.warning(
                "sklearn.externals.joblib was imported (by the entry script, or a pickle made with scikit-learn "
                "< 0.23), but scikit-learn 0.23 removed it: the joblib package serves it instead. "
                "In the script, write `import joblib`."
            )
        sys.modules[module.__name__] = target


class _AliasFinder(MetaPathFinder):
    def __init__(self) -> None:
        self.created: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in _PACKAGES:
            self.created.add(fullname)
            return ModuleSpec(fullname, _EmptyPackage(), origin="scorehost.compat", is_package=True)
        aliased = _target(fullname)
        if aliased is None:
            return None
        self.created.add(fullname)
        return ModuleSpec(fullname, _Alias(aliased), origin=aliased)


# The server's side of the contract: always scorehost's, installed packages or not. The data collector too: the
# real package sends to an Azure agent that is not there, so its rows would be lost.
_SERVER_MODULES = frozenset(
    name for name in _MODULES if name.rsplit(".", 1)[-1] in ("aml_request", "aml_response") or ".monitoring" in name
)


class _FrontFinder(_AliasFinder):
    """Answers, before any other finder, the server's modules and joblib's submodules under sklearn.externals."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in _SERVER_MODULES:
            return super().find_spec(fullname, path, target)
        return _joblib_submodule(self, fullname, path, target)


def _joblib_submodule(
    finder: _AliasFinder, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    """Resolves `sklearn.externals.joblib.X` to `joblib.X` once the parent is our alias of joblib.

    It must run before the path finder, which would otherwise load a second copy of `joblib/X.py` from the
    aliased parent's `__path__`, with classes that joblib's own isinstance checks reject (old pickles name
    `sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper`). A real vendored joblib is left alone.
    """
    if not fullname.startswith(_JOBLIB + "."):
        return None
    joblib = sys.modules.get("joblib")
    if joblib is None or sys.modules.get(_JOBLIB) is not joblib:
        return None
    return _AliasFinder.find_spec(finder, fullname, path, target)


_finder = _AliasFinder()
_front_finder = _FrontFinder()


def install_import_aliases() -> None:
    """Let entry scripts import the `azureml.*` names; idempotent. Real installed packages keep precedence."""
    if _front_finder not in sys.meta_path:
        sys.meta_path.insert(0, _front_finder)
    if _finder not in sys.meta_path:
        sys.meta_path.append(_finder)


def uninstall_import_aliases() -> None:
    """Undo `install_import_aliases()`: remove the finders and every module they provided (for tests)."""
    for finder in (_front_finder, _finder):
        while finder in sys.meta_path:
            sys.meta_path.remove(finder)
    for name in sorted(_finder.created | _front_finder.created, key=len, reverse=True):
        module = sys.modules.pop(name, None)
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        # A parent that is itself an alias (joblib, as sklearn.externals.joblib) keeps its own submodules.
        owns_child = parent is not None and parent.__name__ == parent_name
        if module is not None and owns_child and getattr(parent, child, None) is module:
            delattr(parent, child)
    _finder.created.clear()
    _front_finder.created.clear()
