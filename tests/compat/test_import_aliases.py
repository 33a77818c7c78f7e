"""The azureml.* import names, each test in a fresh interpreter so that this process's sys.modules stays clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np

PRELUDE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from scorehost.compat import install_import_aliases
install_import_aliases()
"""


def python(code: str, cwd: Path, pythonpath: Path | None = None, prelude: str = PRELUDE) -> tuple[Any, str]:
    """Run code (after the prelude) in a new interpreter; return the JSON it printed last, and its stderr."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else dict(os.environ)
    source = textwrap.dedent(prelude) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", source], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_an_entry_scripts_imports_resolve_to_scorehost(tmp_path: Path) -> None:
    result, _ = python(
        """
        from azureml.contrib.services.aml_request import AMLRequest, rawhttp
        from azureml.contrib.services.aml_response import AMLResponse
        from azureml.core.model import Model
        from azureml.core import Model as ModelFromCore
        import scorehost.compat as compat

        @rawhttp
        def run(request):
            return AMLResponse("ok", 200)

        print(json.dumps({
            "request": AMLRequest is compat.AMLRequest,
            "response": AMLResponse is compat.AMLResponse,
            "model": Model is ModelFromCore is compat.Model,
            "same_module": sys.modules["azureml.contrib.services.aml_request"] is compat.aml_request,
            "raw": compat.raw_http_requested(),
            "marked": run.__scorehost_rawhttp__,
            "spec": sys.modules["scorehost.compat.aml_request"].__spec__.name,
        }))
        """,
        tmp_path,
    )
    assert result == {
        "request": True,
        "response": True,
        "model": True,
        "same_module": True,
        "raw": True,
        "marked": True,
        "spec": "scorehost.compat.aml_request",
    }


def test_the_reference_servers_own_module_names_resolve_too(tmp_path: Path) -> None:
    result, _ = python(
        """
        from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
        from azureml_inference_server_http.api.aml_response import AMLResponse
        import scorehost
        print(json.dumps([AMLRequest is scorehost.AMLRequest, AMLResponse is scorehost.AMLResponse,
                          rawhttp is scorehost.rawhttp]))
        """,
        tmp_path,
    )
    assert result == [True, True, True]


def test_other_azureml_names_still_fail_as_missing(tmp_path: Path) -> None:
    result, _ = python(
        """
        failures = []
        for name in ("azureml.core.workspace", "azureml.train", "azureml_inference_server_http.server"):
            try:
                __import__(name)
            except ModuleNotFoundError as exc:
                failures.append(exc.name)
        try:
            from azureml.core import Workspace
        except ImportError as exc:
            failures.append("Workspace")
        print(json.dumps(failures))
        """,
        tmp_path,
    )
    assert result == ["azureml.core.workspace", "azureml.train", "azureml_inference_server_http.server", "Workspace"]


def test_nothing_resolves_before_install_and_nothing_is_written_to_disk(tmp_path: Path) -> None:
    result, _ = python(
        """
        import importlib.util
        before = importlib.util.find_spec("azureml") is None
        from scorehost.compat import install_import_aliases
        install_import_aliases()
        install_import_aliases()  # idempotent
        from scorehost.compat import imports
        spec = importlib.util.find_spec("azureml.contrib.services")
        print(json.dumps({
            "before": before,
            "origin": spec.origin,
            "has_file": hasattr(__import__("azureml"), "__file__"),
            "ours_last": sys.meta_path[-1] is imports._finder,
            "count": sys.meta_path.count(imports._finder),
        }))
        """,
        tmp_path,
        prelude="import json, sys\n",
    )
    assert result == {"before": True, "origin": "scorehost.compat", "has_file": False, "ours_last": True, "count": 1}


def test_uninstall_removes_what_install_provided(tmp_path: Path) -> None:
    result, _ = python(
        """
        import azureml.contrib.services.aml_response
        from sklearn.externals import joblib
        from scorehost.compat import uninstall_import_aliases
        uninstall_import_aliases()
        left = sorted(name for name in sys.modules if name.startswith(("azureml", "sklearn.externals.joblib")))
        try:
            import azureml
            gone = False
        except ModuleNotFoundError:
            gone = True
        print(json.dumps({"left": left, "gone": gone, "attr": hasattr(sys.modules["sklearn.externals"], "joblib"),
                          "joblib_intact": hasattr(sys.modules["joblib"], "numpy_pickle")}))
        """,
        tmp_path,
    )
    assert result == {"left": [], "gone": True, "attr": False, "joblib_intact": True}


def test_sklearn_externals_joblib_is_joblib_with_a_logged_warning(tmp_path: Path) -> None:
    result, stderr = python(
        """
        from sklearn.externals import joblib
        import sklearn.externals.joblib.numpy_pickle as numpy_pickle
        import joblib as real
        print(json.dumps([joblib is real, numpy_pickle is real.numpy_pickle]))
        """,
        tmp_path,
    )
    assert result == [True, True]
    warnings = [line for line in stderr.splitlines() if line.startswith("WARNING scorehost.compat:")]
    assert len(warnings) == 1
    assert "sklearn.externals.joblib" in warnings[0]
    assert "import joblib" in warnings[0]


def test_a_pickle_made_with_sklearn_externals_joblib_loads(tmp_path: Path) -> None:
    # joblib.dump at protocol 2 names classes as text; rename them as scikit-learn < 0.23 wrote them.
    path = tmp_path / "old.pkl"
    joblib.dump({"weights": np.arange(5.0)}, path, protocol=2)
    data = path.read_bytes()
    assert b"cjoblib.numpy_pickle\n" in data
    path.write_bytes(data.replace(b"cjoblib.numpy_pickle\n", b"csklearn.externals.joblib.numpy_pickle\n"))
    result, _ = python(
        """
        import joblib
        loaded = joblib.load("old.pkl")
        print(json.dumps([type(loaded["weights"]).__name__, loaded["weights"].tolist()]))
        """,
        tmp_path,
    )
    assert result == ["ndarray", [0.0, 1.0, 2.0, 3.0, 4.0]]


def test_a_real_azureml_package_wins(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "azureml" / "core").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "model.py").write_text("MARKER = 'real sdk'\n\nclass Model:\n    pass\n")
    result, _ = python(
        """
        from azureml.core.model import Model, MARKER
        import azureml.core.model as model
        # The real SDK here lacks azureml.contrib: that part still comes from scorehost.
        from azureml.contrib.services.aml_request import AMLRequest
        import scorehost
        print(json.dumps([MARKER, model.__file__.endswith("site/azureml/core/model.py"),
                          AMLRequest is scorehost.AMLRequest]))
        """,
        tmp_path,
        pythonpath=site,
    )
    assert result == ["real sdk", True, True]


def test_the_request_and_response_modules_are_scorehosts_even_when_real_ones_are_installed(tmp_path: Path) -> None:
    # AMLRequest, AMLResponse and @rawhttp are the server's side of the contract: under scorehost they must be
    # scorehost's, or the script would expect request objects that scorehost never passes.
    site = tmp_path / "site"
    services = site / "azureml" / "contrib" / "services"
    api = site / "azureml_inference_server_http" / "api"
    for folder in (services, api):
        folder.mkdir(parents=True)
    for package in (site / "azureml", site / "azureml" / "contrib", services, api.parent, api):
        (package / "__init__.py").write_text("MARKER = 'real package'\n")
    for folder in (services, api):
        for name in ("aml_request", "aml_response"):
            (folder / f"{name}.py").write_text("MARKER = 'real module'\ndef rawhttp(f):\n    return f\n")
    result, _ = python(
        """
        import azureml.contrib.services as services
        from azureml.contrib.services.aml_request import AMLRequest, rawhttp
        from azureml.contrib.services.aml_response import AMLResponse
        from azureml_inference_server_http.api import aml_request as api_request
        import scorehost
        print(json.dumps([services.MARKER, AMLRequest is scorehost.AMLRequest, rawhttp is scorehost.rawhttp,
                          AMLResponse is scorehost.AMLResponse, api_request.AMLRequest is scorehost.AMLRequest,
                          hasattr(api_request, "MARKER")]))
        """,
        tmp_path,
        pythonpath=site,
    )
    assert result == ["real package", True, True, True, True, False]
