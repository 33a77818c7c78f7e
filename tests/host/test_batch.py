"""run_batch() as a script declares it: found, checked, its limits read (from the object, and from the source
before import), and its results checked against its inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scorehost.errors import BadRunSignature, RunFailed
from scorehost.host import load_entry_script
from scorehost.host.batch import BatchSettings, declared_batch_size

pytestmark = pytest.mark.usefixtures("script_sandbox")

WriteScript = Callable[..., Path]

PLAIN = """
def init():
    pass

def run(data):
    return data
"""


def test_a_script_without_run_batch_is_not_batched(write_script: WriteScript) -> None:
    script = write_script(PLAIN)
    entry = load_entry_script(script)
    assert entry.run_batch_function is None
    assert entry.batch is None
    assert declared_batch_size(script) is None


def test_run_batch_with_the_default_limits(write_script: WriteScript) -> None:
    script = write_script(PLAIN + "\ndef run_batch(inputs):\n    return [len(inputs)] * len(inputs)\n")
    entry = load_entry_script(script)
    assert entry.batch == BatchSettings(32, 2.0)
    assert declared_batch_size(script) == 32
    assert entry.call_batch(["a", "b"]) == [2, 2]


def test_the_decorator_sets_the_limits_seen_before_and_after_import(write_script: WriteScript) -> None:
    script = write_script(
        "import scorehost\n" + PLAIN + "\n@scorehost.batch(max_batch_size=8, max_wait_ms=5)\n"
        "def run_batch(inputs):\n    return inputs\n"
    )
    assert declared_batch_size(script) == 8  # read before loading, without importing
    assert load_entry_script(script).batch == BatchSettings(8, 5.0)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("inputs[:-1]", "run_batch() returned 1 results for 2 inputs"),
        ("'ab'", "run_batch() returned str, not a list of results"),
        ("None", "run_batch() returned NoneType, not a list of results"),
        ("1 / 0", "run_batch() raised ZeroDivisionError: division by zero"),
    ],
)
def test_results_that_do_not_match_the_inputs_fail_the_batch(
    write_script: WriteScript, returned: str, message: str
) -> None:
    entry = load_entry_script(write_script(PLAIN + f"\ndef run_batch(inputs):\n    return {returned}\n"))
    with pytest.raises(RunFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        entry.call_batch(["a", "b"])


def test_a_numpy_array_of_results_is_one_result_per_row(write_script: WriteScript) -> None:
    entry = load_entry_script(
        write_script("import numpy as np\n" + PLAIN + "\ndef run_batch(inputs):\n    return np.arange(len(inputs))\n")
    )
    assert [int(value) for value in entry.call_batch(["a", "b", "c"])] == [0, 1, 2]  # type: ignore[call-overload]


@pytest.mark.parametrize("signature", ["()", "(inputs, more)", "(*, inputs)"])
def test_a_run_batch_that_cannot_take_the_inputs_is_refused(write_script: WriteScript, signature: str) -> None:
    script = write_script(PLAIN + f"\ndef run_batch{signature}:\n    return []\n")
    with pytest.raises(BadRunSignature, match=r"Declare it as `def run_batch\(inputs\):`"):
        load_entry_script(script)


@pytest.mark.parametrize(("size", "wait"), [(0, 1.0), (5000, 1.0), (4, -1.0)])
def test_limits_out_of_range_are_refused(size: int, wait: float) -> None:
    with pytest.raises(ValueError, match="must be between"):
        BatchSettings(size, wait)
