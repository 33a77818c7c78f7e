"""The import directions of docs/design.md, checked in a fresh interpreter: what a module loads, not what it says."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(result.stdout.split())


def roots(modules: set[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


def test_the_gateway_loads_no_granian_and_nothing_of_the_scoring_server() -> None:
    loaded = loaded_after_import("scorehost.deploy.gateway.server")
    assert "granian" not in roots(loaded)
    assert not {name for name in loaded if name.startswith("scorehost.http")}


def test_the_host_loads_no_werkzeug_and_nothing_of_http() -> None:
    loaded = loaded_after_import("scorehost.host")
    assert "werkzeug" not in roots(loaded)
    assert "granian" not in roots(loaded)
    assert not {name for name in loaded if name.startswith("scorehost.http")}


@pytest.mark.parametrize("module", ["scorehost.ray.replica", "scorehost.http.factory", "scorehost.ray.config"])
def test_a_ray_replica_builds_its_app_without_granian(module: str) -> None:
    assert "granian" not in roots(loaded_after_import(module))


def test_serving_a_script_loads_no_database_library() -> None:
    # SQLAlchemy is a third of a second and ~15 MB per start: only `--model` (http/registered.py) needs it, lazily.
    assert "sqlalchemy" not in roots(loaded_after_import("scorehost.http.server"))
