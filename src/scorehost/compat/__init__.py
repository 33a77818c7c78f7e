"""The `azureml.*` names Azure ML entry scripts import: `AMLRequest`, `AMLResponse`, `rawhttp`, `Model`.

`install_import_aliases()` makes `azureml.contrib.services.aml_request`, `azureml.core.model` and the like
resolve to these while scorehost hosts a script. Importing this package imports werkzeug; the host, which
must not, imports `scorehost.compat.rawhttp` alone.
"""

from __future__ import annotations

from scorehost.compat.aml_request import AMLRequest
from scorehost.compat.aml_response import AMLResponse
from scorehost.compat.imports import install_import_aliases, uninstall_import_aliases
from scorehost.compat.model import Model, ModelNotFound
from scorehost.compat.rawhttp import raw_http_requested, rawhttp, reset_raw_http_requested

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
