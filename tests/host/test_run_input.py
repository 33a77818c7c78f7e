"""`run_input`: what an undecorated run(data) receives, and how `auto` reads the script to decide."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from scorehost.host import RunInput, RunInputDecision, RunInputRule, load_entry_script
from scorehost.host.run_input import decide_run_input, find_data_key_read

WriteScript = Callable[..., Path]

PUBLISHED_STYLE = """
import json

def init():
    pass

def run(raw_data):
    data = json.loads(raw_data)["data"]
    return data
"""

GET_STYLE = """
import json

def init():
    pass

def run(raw_data):
    payload = json.loads(raw_data)
    rows = payload.get("data")
    return rows
"""

DOCUMENTATION_STYLE = """
import json
import numpy as np

def init():
    global model
    model = None

def run(data):
    data = np.array(json.loads(data))
    return data.sum().tolist()
"""


def source(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --- find_data_key_read -----------------------------------------------------------------------------


def test_subscript_data_is_a_read() -> None:
    assert find_data_key_read(source(PUBLISHED_STYLE)) == 7


def test_get_data_is_a_read() -> None:
    assert find_data_key_read(source(GET_STYLE)) == 8


def test_documentation_style_reads_no_key() -> None:
    assert find_data_key_read(source(DOCUMENTATION_STYLE)) is None


def test_the_first_read_by_line_is_reported() -> None:
    text = source(
        """
        def run(raw):
            payload = json.loads(raw)
            if "data" in payload:
                return payload.get("data", [])
            return payload["data"]
        """
    )
    assert find_data_key_read(text) == 4


@pytest.mark.parametrize(
    "snippet",
    [
        'x = body.get("data", None)',
        'x = request.json["data"][0]',
        'del payload["data"]',
        "x = json.loads(raw)['data']",
    ],
)
def test_reads_of_the_data_key(snippet: str) -> None:
    assert find_data_key_read(f"import json\n{snippet}\n") == 2


@pytest.mark.parametrize(
    "snippet",
    [
        '# json.loads(raw)["data"] is what published scripts do',
        '"""Send {"data": [[1, 2]]} and read json.loads(raw)["data"]."""',
        'result = {"data": predictions}',
        'value = os.environ.get("DATA")',
        'value = row["database"]',
        'value = row.get("payload")',
        'value = getattr(row, "data")',
        "value = row.get(data)",
        'value = row.get()["data2"]',
        "value = row[0]",
        # Writing the key is not reading it: a documentation-style script that builds its answer.
        'result["data"] = predictions',
        'result["data"], extra = predictions, 1',
    ],
)
def test_things_that_are_not_reads_of_the_data_key(snippet: str) -> None:
    assert find_data_key_read(snippet + "\n") is None


def test_unparseable_source_reads_nothing() -> None:
    assert find_data_key_read('def run(data)\n    return json.loads(data)["data"]\n') is None


def test_documentation_style_script_that_returns_a_data_key_still_gets_the_value(write_script: WriteScript) -> None:
    script = write_script(
        """
        import json

        def init():
            pass

        def run(data):
            rows = json.loads(data)
            result = {}
            result["data"] = [sum(row) for row in rows]
            return result
        """
    )
    assert decide_run_input(RunInput.AUTO, script).rule is RunInputRule.DATA_IF_ONLY_KEY


# --- decide_run_input -------------------------------------------------------------------------------


def test_auto_on_a_script_that_reads_data_itself_is_body(write_script: WriteScript) -> None:
    script = write_script(PUBLISHED_STYLE)
    decision = decide_run_input(RunInput.AUTO, script)
    assert decision == RunInputDecision(RunInputRule.BODY, 'run_input=auto: score.py line 7 reads a "data" key')


def test_auto_on_a_documentation_style_script_is_data_if_only_key(write_script: WriteScript) -> None:
    script = write_script(DOCUMENTATION_STYLE)
    decision = decide_run_input(RunInput.AUTO, script)
    assert decision == RunInputDecision(
        RunInputRule.DATA_IF_ONLY_KEY, 'run_input=auto: score.py never reads a "data" key itself'
    )


@pytest.mark.parametrize(("setting", "rule"), [(RunInput.DATA, RunInputRule.DATA), (RunInput.BODY, RunInputRule.BODY)])
@pytest.mark.parametrize("text", [PUBLISHED_STYLE, DOCUMENTATION_STYLE])
def test_explicit_settings_win_over_the_source(
    write_script: WriteScript, setting: RunInput, rule: RunInputRule, text: str
) -> None:
    script = write_script(text)
    decision = decide_run_input(setting, script)
    assert decision.rule is rule
    assert decision.reason == f"set by run_input={setting.value}"


def test_settings_parse_from_their_names() -> None:
    assert [RunInput(name) for name in ("auto", "data", "body")] == [RunInput.AUTO, RunInput.DATA, RunInput.BODY]
    with pytest.raises(ValueError, match="'json'"):
        RunInput("json")


@pytest.mark.parametrize(
    ("decision", "opening"),
    [
        (
            RunInputDecision(RunInputRule.DATA, "set by run_input=data"),
            'run() receives the JSON text of the body\'s "data" value',
        ),
        (RunInputDecision(RunInputRule.BODY, "set by run_input=body"), "run() receives the raw request body"),
        (
            RunInputDecision(RunInputRule.DATA_IF_ONLY_KEY, "why"),
            'run() receives the JSON text of "data" when the body is {"data": ...} alone, and the raw body otherwise',
        ),
    ],
)
def test_describe_names_the_rule_the_reason_and_the_override(decision: RunInputDecision, opening: str) -> None:
    assert decision.describe() == f"{opening} ({decision.reason}); override with --run-input data|body"


@pytest.mark.usefixtures("script_sandbox")
def test_start_up_description_for_a_loaded_script(write_script: WriteScript) -> None:
    entry = load_entry_script(write_script(GET_STYLE, name="published.py"))
    text = entry.run_input.describe()
    assert text == (
        'run() receives the raw request body (run_input=auto: published.py line 8 reads a "data" key); '
        "override with --run-input data|body"
    )


def test_the_echo_fixture_is_data_if_only_key(scripts: Path) -> None:
    assert decide_run_input(RunInput.AUTO, scripts / "echo.py").rule is RunInputRule.DATA_IF_ONLY_KEY


def test_the_hangs_fixture_is_data_if_only_key(scripts: Path) -> None:
    assert decide_run_input(RunInput.AUTO, scripts / "hangs.py").rule is RunInputRule.DATA_IF_ONLY_KEY
