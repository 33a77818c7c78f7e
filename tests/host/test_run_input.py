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


# --- auto follows the modules of the code folder the script imports -----------------------------------

UNDECORATED_RUN = """
import json

def init():
    pass

def run(raw):
    return {"rows": len(parse(raw))}
"""

READS_DATA = """
import json


def parse(raw):
    payload = json.loads(raw)
    return payload["data"]
"""  # "data" is read on line 6


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> source) under `folder`; return the path of its score.py."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source(text), encoding="utf-8")
    return folder / "score.py"


def auto_reason(folder: Path, files: dict[str, str]) -> tuple[RunInputRule, str]:
    decision = decide_run_input(RunInput.AUTO, write_folder(folder, files))
    return decision.rule, decision.reason


@pytest.mark.parametrize(
    ("imports", "helper", "reached"),
    [
        ("from preprocess import parse", "preprocess.py", "score.py"),
        ("import preprocess\nparse = preprocess.parse", "preprocess.py", "score.py"),
        ("import utils.io as io\nparse = io.parse", "utils/io.py", "score.py"),
        ("from utils import io\nparse = io.parse", "utils/io.py", "score.py"),
        ("from utils.io import parse", "utils/io.py", "score.py"),
        ("from .preprocess import parse", "preprocess.py", "score.py"),
        ("from pkg import parse", "pkg/__init__.py", "score.py"),
        ("from pkg import entry\nparse = entry.parse", "pkg/reader.py", "pkg/entry.py, imported by score.py"),
    ],
    ids=[
        "from-x-import-f",
        "import-x",
        "import-a-b-as",
        "from-pkg-import-mod",
        "from-a-b-import-f",
        "relative",
        "package-init",
        "relative-in-a-package",
    ],
)
def test_auto_follows_a_helper_that_reads_data(tmp_path: Path, imports: str, helper: str, reached: str) -> None:
    files = {
        "score.py": imports + "\n" + source(UNDECORATED_RUN),
        "preprocess.py": READS_DATA,
        "utils/io.py": READS_DATA,
        "pkg/__init__.py": "",
        "pkg/entry.py": "from . import reader\nparse = reader.parse\n",
        "pkg/reader.py": READS_DATA,
    }
    if helper == "pkg/__init__.py":  # the name comes from the package itself
        files["pkg/__init__.py"] = READS_DATA
    assert auto_reason(tmp_path / "app", files) == (
        RunInputRule.BODY,
        f'run_input=auto: {helper} line 6 (imported by {reached}) reads a "data" key',
    )


def test_auto_follows_imports_inside_functions_and_try_blocks(tmp_path: Path) -> None:
    score = """
    try:
        import ujson as json
    except ImportError:
        import json

    def run(raw):
        from helpers.parse import parse
        return parse(raw)
    """
    rule, reason = auto_reason(tmp_path / "app", {"score.py": score, "helpers/parse.py": READS_DATA})
    assert (rule, reason) == (
        RunInputRule.BODY,
        'run_input=auto: helpers/parse.py line 6 (imported by score.py) reads a "data" key',
    )


def test_auto_follows_a_chain_of_helpers(tmp_path: Path) -> None:
    files = {
        "score.py": "import a\n" + source(UNDECORATED_RUN),
        "a.py": "import json\n\nimport b\n",
        "b.py": "def unused():\n    pass\n\n\ndef helper():\n    from c import parse\n",
        "c.py": READS_DATA,
    }
    assert auto_reason(tmp_path / "app", files) == (
        RunInputRule.BODY,
        'run_input=auto: c.py line 6 (imported by b.py, imported by a.py, imported by score.py) reads a "data" key',
    )


def test_the_script_itself_decides_before_its_helpers(tmp_path: Path) -> None:
    files = {"score.py": "import preprocess\n" + source(PUBLISHED_STYLE), "preprocess.py": READS_DATA}
    assert auto_reason(tmp_path / "app", files) == (
        RunInputRule.BODY,
        'run_input=auto: score.py line 8 reads a "data" key',
    )


def test_a_cycle_of_helpers_ends(tmp_path: Path) -> None:
    files = {
        "score.py": "import a\n" + source(UNDECORATED_RUN),
        "a.py": "import b\n",
        "b.py": "import a\nimport score\n",
    }
    assert auto_reason(tmp_path / "app", files) == (
        RunInputRule.DATA_IF_ONLY_KEY,
        'run_input=auto: score.py never reads a "data" key itself, nor do the modules of its folder it imports '
        "(a.py, b.py)",
    )


def test_a_helper_that_does_not_parse_is_skipped(tmp_path: Path) -> None:
    files = {
        "score.py": "import broken\nimport good\n" + source(UNDECORATED_RUN),
        "broken.py": 'def parse(raw)\n    return json.loads(raw)["data"]\n',
        "good.py": READS_DATA,
    }
    assert auto_reason(tmp_path / "app", files) == (
        RunInputRule.BODY,
        'run_input=auto: good.py line 6 (imported by score.py) reads a "data" key',
    )
    (tmp_path / "app" / "good.py").unlink()
    assert auto_reason(tmp_path / "app", {}) == (
        RunInputRule.DATA_IF_ONLY_KEY,
        'run_input=auto: score.py never reads a "data" key itself',
    )


def test_modules_outside_the_folder_are_not_read(tmp_path: Path) -> None:
    # A module beside the folder, a relative import that climbs out of it, and a symlink that leads out.
    (tmp_path / "outside.py").write_text(source(READS_DATA), encoding="utf-8")
    (tmp_path / "climbs.py").write_text(source(READS_DATA), encoding="utf-8")
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "linked.py").symlink_to(tmp_path / "outside.py")
    (folder / "pkg").mkdir()
    (folder / "pkg" / "more").symlink_to(tmp_path, target_is_directory=True)
    score = "import outside\nimport linked\nfrom .. import climbs\nfrom pkg.more import outside\n"
    rule, reason = auto_reason(folder, {"score.py": score + source(UNDECORATED_RUN)})
    assert (rule, reason) == (RunInputRule.DATA_IF_ONLY_KEY, 'run_input=auto: score.py never reads a "data" key itself')


def test_standard_and_installed_modules_are_not_followed(tmp_path: Path) -> None:
    score = "import json\nimport os.path\nfrom collections import abc\nimport pytest\n" + source(UNDECORATED_RUN)
    assert auto_reason(tmp_path / "app", {"score.py": score}) == (
        RunInputRule.DATA_IF_ONLY_KEY,
        'run_input=auto: score.py never reads a "data" key itself',
    )


def test_the_walk_is_bounded(tmp_path: Path) -> None:
    # A chain of 60 helpers; the last one reads "data" but lies past the bound of 50 files.
    files = {"score.py": "import m0\n" + source(UNDECORATED_RUN)}
    files |= {f"m{index}.py": f"import m{index + 1}\n" for index in range(60)}
    files["m60.py"] = READS_DATA
    rule, reason = auto_reason(tmp_path / "app", files)
    assert rule is RunInputRule.DATA_IF_ONLY_KEY
    assert reason.endswith("(m0.py, m1.py, m2.py and 47 more, the first 50 followed)")


def test_a_helper_over_the_size_bound_is_not_read(tmp_path: Path) -> None:
    big = source(READS_DATA) + "#" * (1 << 20) + "\n"
    assert auto_reason(tmp_path / "app", {"score.py": "import big\n" + source(UNDECORATED_RUN), "big.py": big}) == (
        RunInputRule.DATA_IF_ONLY_KEY,
        'run_input=auto: score.py never reads a "data" key itself',
    )


@pytest.mark.usefixtures("script_sandbox")
def test_start_up_description_names_the_helper(tmp_path: Path) -> None:
    script = write_folder(
        tmp_path / "app", {"score.py": "from helper import parse\n" + source(UNDECORATED_RUN), "helper.py": READS_DATA}
    )
    text = load_entry_script(script).run_input.describe()
    assert text == (
        'run() receives the raw request body (run_input=auto: helper.py line 6 (imported by score.py) reads a "data" '
        "key); override with --run-input data|body"
    )


def test_the_helper_fixture_folder_is_body(scripts: Path) -> None:
    decision = decide_run_input(RunInput.AUTO, scripts / "data_key_in_helper" / "score.py")
    assert decision.rule is RunInputRule.BODY
