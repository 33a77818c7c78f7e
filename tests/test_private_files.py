"""The one writer of workspace files that hold secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scorehost.private_files import write_private


def test_the_file_is_the_owners_alone_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "token"
    old = os.umask(0)
    try:
        write_private(target, b"first")
        write_private(target, b"second")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [entry.name for entry in tmp_path.iterdir()] == ["token"]  # no scratch left


def test_a_write_that_fails_leaves_the_old_file_and_no_scratch(tmp_path: Path) -> None:
    target = tmp_path / "routes.json"
    target.mkdir()  # cannot be replaced by a file
    with pytest.raises(IsADirectoryError):
        write_private(target, b"{}")
    assert [entry.name for entry in tmp_path.iterdir()] == ["routes.json"]
    assert target.is_dir()
