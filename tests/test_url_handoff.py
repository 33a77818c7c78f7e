"""The workspace database's URL handed to a child through an inherited pipe (url_handoff.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scorehost.errors import RegistryError
from scorehost.url_handoff import URL_FD_VARIABLE, pipe_url, take_url

URL = "postgresql+psycopg://scorehost:s3cret@127.0.0.1:5432/workspace"

# The child takes the URL, then shows what a worker it would start inherits: the variable, and the descriptor.
CHILD = f"""
import os, sys
from scorehost.url_handoff import take_url
fd = int(os.environ["{URL_FD_VARIABLE}"])
print(take_url())
print("{URL_FD_VARIABLE}" in os.environ)
try:
    os.fstat(fd)
    print("open")
except OSError:
    print("closed")
print(take_url())
"""


def test_a_child_reads_the_url_once_and_leaves_neither_the_descriptor_nor_the_variable() -> None:
    fd, variables = pipe_url(URL)
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            env={**os.environ, **variables},
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        os.close(fd)
    assert done.stdout.splitlines() == [URL, "False", "closed", "None"]


def test_no_variable_no_url() -> None:
    assert take_url({}) is None


@pytest.mark.parametrize("value", ["not-a-number", "987"])
def test_a_variable_that_names_no_pipe_is_refused_saying_who_sets_it(value: str) -> None:
    environ = {URL_FD_VARIABLE: value}
    with pytest.raises(RegistryError, match="the control plane sets it"):
        take_url(environ)
    assert environ == {}
