"""Each compat test leaves the process as it found it: no `@rawhttp` flag, no import aliases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scorehost.compat import reset_raw_http_requested, uninstall_import_aliases


@pytest.fixture(autouse=True)
def _clean_compat_state() -> Iterator[None]:
    yield
    reset_raw_http_requested()
    uninstall_import_aliases()
