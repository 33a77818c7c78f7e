"""The `azureml.*` names Azure ML entry scripts import: `AMLRequest`, `AMLResponse`, `rawhttp`, `Model`.

`install_import_aliases()` makes `azureml.contrib.services.aml_request`, `azureml.core.model` and the like
resolve to these while scorehost hosts a script. Names load on first use (PEP 562), so that importing
`scorehost.compat.rawhttp`, as the host does, does not import werkzeug.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager, and light: the submodule `rawhttp` would otherwise shadow the function of the same name here.
from scorehost.compat.rawhttp import raw_http_requested, rawhttp, reset_raw_http_requested

if TYPE_CHECKING:
    from scorehost.compat.aml_request import AMLRequest
    from scorehost.compat.aml_response import AMLResponse
    from scorehost.compat.imports import install_import_aliases, uninstall_import_aliases
    from scorehost.compat.model import Model, ModelNotFound

__all__ = [
    "AMLRequest",
    "AMLResponse",
    "Model",
    "ModelNotFound",
    "install_import_aliases",
    "raw_http_requested",
    "rawhttp",
    "reset_raw_http_requested",
    "uninstall_import_aliases",
]

_MODULE_OF = {
    "AMLRequest": "aml_request",
    "AMLResponse": "aml_response",
    "Model": "model",
    "ModelNotFound": "model",
    "install_import_aliases": "imports",
    "uninstall_import_aliases": "imports",
}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
