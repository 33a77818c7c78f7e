"""docs/endpoints.md runs as written (tests/_tutorials.py says how a tutorial is run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tutorials import run_tutorial


@pytest.mark.timeout(600)
def test_the_endpoints_tutorial_runs_as_written(tmp_path: Path) -> None:
    run_tutorial("docs/endpoints.md", tmp_path)
