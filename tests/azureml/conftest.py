"""Fixtures: real Azure ML project files written into tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from _samples import OnlineSamples, make_online_samples, write_file


@pytest.fixture
def online(tmp_path: Path) -> OnlineSamples:
    """azureml-examples' cli/endpoints/online: managed/sample/{endpoint,blue-deployment}.yml and model-1/."""
    return make_online_samples(tmp_path)


@pytest.fixture
def yaml_file(tmp_path: Path) -> Callable[..., Path]:
    """Write `text` (dedented) to tmp_path/`name` and return its path."""

    def write(text: str, name: str = "file.yml") -> Path:
        return write_file(tmp_path / name, textwrap.dedent(text))

    return write
