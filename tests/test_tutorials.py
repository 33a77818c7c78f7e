"""The tutorials in docs/ run as written: every ```bash block, in order, as a reader runs them.

How a tutorial marks its blocks (which run, which run in the background, what output is checked)
and how ports are made free is written at the top of tests/_tutorials.py. Each tutorial runs in a
copy of examples/ (so the files it makes stay out of the checkout), with a workspace of its own
(SCOREHOST_HOME), the venv's `scorehost` and `python` first on PATH, and free ports, so tutorials
run in parallel under pytest-xdist. Whatever it started is stopped at the end, also on failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _tutorials import ROOT, TutorialRun, check_output, localize, parse, scores

# Each runs in its own test file (test_tutorial_<name>.py), so that pytest-xdist runs them side by side.
TUTORIALS = ["docs/registry.md", "docs/endpoints.md", "docs/console.md"]


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_tutorial_follows_the_conventions(tutorial: str) -> None:
    blocks = parse((ROOT / tutorial).read_text())
    assert blocks, f"{tutorial} has no ```bash block to run"
    if tutorial != "docs/console.md":  # the console's shows where to sign in, not a score
        assert any(scores(block.expected or "") for block in blocks), f"{tutorial} shows no score to check"


def test_the_runner_carries_state_and_compares_scores(tmp_path: Path) -> None:
    """The harness itself, on a small tutorial: variables and `cd` carry over, failures name their block."""
    workdir = tmp_path / "repo"
    (workdir / "sub").mkdir(parents=True)
    text = (
        "```bash\nGREETING=hello\ncd sub\n```\n\n"
        '```bash\necho "$GREETING from $(basename "$PWD")"\necho \'{"digits": [7], "confidence": [0.5]}\'\n```\n\n'
        '```text\nhello from sub\n{"digits":[7],"confidence":[0.501]}\n```\n\n'
        "```bash\nfalse\necho never\n```\n"
    )
    first, second, third = parse(text)
    run = TutorialRun(workdir, {**os.environ, "SCOREHOST_HOME": str(tmp_path / "home")}, timeout=20)
    try:
        run.run(first)
        output = run.run(second)
        assert output.startswith("hello from sub")
        assert second.expected is not None
        assert check_output(second.expected, output) == []
        assert check_output('{"digits":[1],"confidence":[0.5]}', output)  # another digit is a difference
        with pytest.raises(AssertionError, match="line 16 exited 1"):
            run.run(third)
    finally:
        run.close()


def test_the_parser_refuses_what_would_escape_the_test() -> None:
    with pytest.raises(ValueError, match="write ```bash"):
        parse("```sh\nscorehost models list\n```\n")
    with pytest.raises(ValueError, match="before `scorehost controlplane start`"):
        parse("```bash\nscorehost endpoints create digits\n```\n")
    with pytest.raises(ValueError, match="unknown marker"):
        parse("<!-- tutorial: in the background -->\n```bash\nscorehost serve score.py\n```\n")
    text = "scorehost controlplane start\ncurl http://127.0.0.1:5080/ :15080"
    localized = localize(text, {5001: 1, 5080: 2, 5100: 3})
    assert localized == "scorehost controlplane start --api-port 3 --gateway-port 2\ncurl http://127.0.0.1:2/ :15080"
