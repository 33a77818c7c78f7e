"""Run a Markdown tutorial's shell blocks in order, as a reader would from the repository root.

How a tutorial is written so that `tests/test_tutorials.py` can run it (and the reader, word for word):

- Fenced ```bash blocks run, in the order they appear, each under `bash -euo pipefail` with a time
  limit; a block fails the test when it exits non-zero. ```text and ```console blocks are what the
  reader sees and never run, nor do ```python and ```yaml blocks. ```sh and ```shell blocks are
  refused in a tutorial: write bash (it runs) or text (it does not), so no command escapes the test.
- Variables a block sets, and its `cd`, carry to the next blocks, as in one terminal (a state file
  holds them between blocks). A block must not `exit`.
- A command the reader runs in a second terminal, in the foreground (`scorehost serve ...`), is
  marked by an HTML comment on the line above its block, which Markdown viewers do not show:
  `<!-- tutorial: background, ready at http://127.0.0.1:5001/ -->`. The test starts that block in
  the background, waits until GET on the URL answers 200, goes on with the next blocks, and stops it
  with SIGINT (the reader's Ctrl-C) when the tutorial ends.
- A ```text block right after a bash block is what it prints. The test compares what is stable:
  each score (`{"digits": [...], "confidence": [...]}`, confidences within 0.01, since scikit-learn
  versions differ in the last digits) and each line that is a bare HTTP status code (`401`). Tables
  and log lines are for the reader only, so their layout may change.
- Ports: tutorials use scorehost's defaults (5001 `serve`, 5080 the gateway, 5100 the control-plane
  API). Before running, the test replaces each of these numbers in the text with a free port, sets
  SCOREHOST_PORT (which `serve` honours), and adds `--api-port`/`--gateway-port` to `scorehost
  controlplane start`, which a tutorial must run before any `endpoints`, `deployments` or `invoke`
  command (these would otherwise start a control plane on the default ports). So tutorials can run in
  parallel, and beside a developer's own control plane.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scorehost.deploy.controlplane.daemon import stop_control_plane

__all__ = ["ROOT", "Block", "TutorialRun", "check_output", "localize", "parse", "run_tutorial", "scores"]

ROOT = Path(__file__).parent.parent

DEFAULT_PORTS = (5001, 5080, 5100)  # serve, gateway, control-plane API
_FENCE = re.compile(r"^\s*(```+)\s*([\w+-]*)\s*$")  # indented too: a block in a list item
_MARKER = re.compile(r"^<!--\s*tutorial:(.*?)-->\s*$")
_BACKGROUND = re.compile(r"^\s*background,\s*ready at\s+(\S+)\s*$")
_CONTROL_PLANE_COMMAND = re.compile(r"\bscorehost\s+(endpoints|deployments|invoke|console)\b")
_START = re.compile(r"\bscorehost\s+controlplane\s+start\b")
_SCORE = re.compile(r'\{"digits":\s*\[[\d,\s]*\],\s*"confidence":\s*\[[\d.,\s]*\]\}')
_STATUS = re.compile(r"^\s*([1-5]\d\d)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One ```bash block: where it starts, its code, how it runs, and the output the tutorial shows."""

    line: int
    code: str
    ready_url: str | None = None  # set: runs in the background until the tutorial ends
    expected: str | None = None


def parse(text: str) -> list[Block]:
    """The bash blocks of a tutorial, each with its marker and the text block after it; ValueError names
    a line that breaks the conventions above."""
    lines = text.splitlines()
    blocks: list[Block] = []
    marker: tuple[int, str] | None = None
    after_bash = False  # the last fenced block was a bash block: a text block now is its output
    index = 0
    while index < len(lines):
        line = lines[index]
        if found := _MARKER.match(line):
            marker = (index + 1, found.group(1))
        elif fence := _FENCE.match(line):
            end = next((i for i in range(index + 1, len(lines)) if lines[i].strip() == fence.group(1)), None)
            if end is None:
                raise ValueError(f"line {index + 1}: a fenced block that never closes")
            language, body = fence.group(2), textwrap.dedent("\n".join(lines[index + 1 : end]) + "\n")
            if language in ("sh", "shell", "zsh"):
                raise ValueError(f"line {index + 1}: ```{language}: write ```bash (it runs) or ```text (it does not)")
            if language == "bash":
                blocks.append(Block(index + 1, body, _ready_url(marker)))
                marker = None
            elif language == "text" and after_bash:
                last = blocks[-1]
                blocks[-1] = Block(last.line, last.code, last.ready_url, body)
            after_bash = language == "bash"
            if marker:
                raise ValueError(f"line {marker[0]}: a tutorial marker belongs just above a ```bash block")
            index = end
        elif marker and line.strip():
            raise ValueError(f"line {marker[0]}: a tutorial marker belongs just above a ```bash block")
        index += 1
    if marker:
        raise ValueError(f"line {marker[0]}: a tutorial marker belongs just above a ```bash block")
    _check_control_plane_start(blocks)
    return blocks


def _ready_url(marker: tuple[int, str] | None) -> str | None:
    if marker is None:
        return None
    found = _BACKGROUND.match(marker[1])
    if not found:
        raise ValueError(f"line {marker[0]}: unknown marker; write <!-- tutorial: background, ready at URL -->")
    return found.group(1)


def _check_control_plane_start(blocks: list[Block]) -> None:
    started = False
    for block in blocks:
        started = started or bool(_START.search(block.code))
        if not started and (command := _CONTROL_PLANE_COMMAND.search(block.code)):
            raise ValueError(
                f"line {block.line}: `{command.group(0)}` before `scorehost controlplane start`: it would start "
                "a control plane on the default ports; start it in an earlier block"
            )


def localize(text: str, ports: dict[int, int]) -> str:
    """TEXT with each default port replaced by its free stand-in, and the control plane started on them."""
    for default, port in ports.items():
        text = re.sub(rf"\b{default}\b", str(port), text)
    api, gateway = ports[5100], ports[5080]
    return _START.sub(f"scorehost controlplane start --api-port {api} --gateway-port {gateway}", text)


def scores(text: str) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    """Each digits score printed in TEXT, as (digits, confidences)."""
    found = (json.loads(match) for match in _SCORE.findall(text))
    return [(tuple(score["digits"]), tuple(score["confidence"])) for score in found]


def check_output(expected: str, actual: str) -> list[str]:
    """What differs between the output a tutorial shows and what its block printed, in what is stable:
    scores and bare HTTP status lines."""
    problems = []
    shown, printed = scores(expected), scores(actual)
    if shown and {digits for digits, _ in shown} != {digits for digits, _ in printed}:
        problems.append(f"the tutorial shows the scores {shown}; the block printed {printed}")
    elif shown:
        problems += [
            f"printed {digits} with confidence {confidence}; the tutorial shows {shown}"
            for digits, confidence in printed
            if not any(digits == d and _near(confidence, c) for d, c in shown)
        ]
    for status in _STATUS.findall(expected):
        if status not in _STATUS.findall(actual):
            problems.append(f"the tutorial shows status {status}; the block printed {_STATUS.findall(actual)}")
    return problems


def _near(left: tuple[float, ...], right: tuple[float, ...]) -> bool:
    return len(left) == len(right) and all(abs(a - b) <= 0.01 for a, b in zip(left, right, strict=True))


# Each block runs as its own script: the variables of the blocks before it are loaded from the state
# file, and on success its own (those the environment did not already have) and its folder are saved.
_PROLOGUE = """\
declare -A __tutorial_known
for __tutorial_name in $(compgen -v); do __tutorial_known[$__tutorial_name]=1; done
__tutorial_save() {
    local name
    {
        printf 'cd %q\\n' "$PWD"
        for name in $(compgen -v); do
            case "$name" in
                __tutorial_*|BASH*|_|FUNCNAME|PIPESTATUS|COLUMNS|LINES|OPTIND|OPTARG|REPLY|name) continue;;
            esac
            [[ -n "${__tutorial_known[$name]:-}" ]] || declare -p "$name"
        done
    } > "$__TUTORIAL_STATE.new" && mv "$__TUTORIAL_STATE.new" "$__TUTORIAL_STATE"
}
. "$__TUTORIAL_STATE"
"""


@dataclass
class TutorialRun:
    """Runs blocks in WORKDIR with ENV, one bash process each; `close()` stops what runs in the background."""

    workdir: Path
    env: dict[str, str]
    timeout: float = 180.0
    background: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    durations: list[tuple[int, float]] = field(default_factory=list)  # (line, seconds) of each block run

    def __post_init__(self) -> None:
        self.state = self.workdir.parent / f".{self.workdir.name}.tutorial-state"
        self.state.write_text(f"cd {self.workdir}\n")
        self.env = {**self.env, "__TUTORIAL_STATE": str(self.state)}
        self.scripts = 0

    def run(self, block: Block) -> str:
        """Run BLOCK to its end (or, when marked, until its URL is ready) and return what it printed."""
        script, started = self._script(block), time.monotonic()
        try:
            return self._start(block, script) if block.ready_url else self._run(block, script)
        finally:
            self.durations.append((block.line, time.monotonic() - started))

    def _run(self, block: Block, script: Path) -> str:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,  # its children are stopped with it on a timeout
        )
        try:
            out, _ = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _stop_group(process, signal.SIGKILL)
            out, _ = process.communicate()
            raise AssertionError(f"block at line {block.line} ran past {self.timeout:.0f} s:\n{_text(out)}") from None
        if process.returncode != 0:
            raise AssertionError(
                f"block at line {block.line} exited {process.returncode}:\n{block.code}\n--- it printed:\n{_text(out)}"
            )
        return _text(out)

    def _script(self, block: Block) -> Path:
        self.scripts += 1
        script = self.state.with_name(f"{self.state.name}.{self.scripts}.sh")
        save = "" if block.ready_url else "trap '[ $? -eq 0 ] && __tutorial_save' EXIT\n"
        script.write_text(_PROLOGUE + save + block.code)
        return script

    def _start(self, block: Block, script: Path) -> str:
        assert block.ready_url
        log = script.with_suffix(".log")
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-euo", "pipefail", str(script)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.background.append((process, log))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"background block at line {block.line} exited {process.returncode}:\n{log.read_text()}"
                )
            try:
                if httpx.get(block.ready_url, timeout=2).status_code == 200:
                    return log.read_text()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(
            f"background block at line {block.line}: {block.ready_url} not ready in {self.timeout:.0f} s:\n"
            f"{log.read_text()}"
        )

    def close(self) -> None:
        """Ctrl-C each background block (SIGKILL after 20 s), then stop the workspace's control plane."""
        for process, _ in self.background:
            _stop_group(process, signal.SIGINT)
        for process, _ in self.background:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _stop_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        home = Path(self.env["SCOREHOST_HOME"])
        if (home / "controlplane").is_dir():  # also when the tutorial stopped it: a left gateway is stopped too
            stop_control_plane(home)


def _stop_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _text(out: bytes | None) -> str:
    return (out or b"").decode("utf-8", "replace")


def run_tutorial(tutorial: str, tmp_path: Path) -> None:
    """Run every bash block of ROOT/TUTORIAL in order, in a copy of examples/ with a workspace and free ports of
    its own, and check the output it shows; whatever it started is stopped, also on failure."""
    from _control_plane import free_port

    ports: dict[int, int] = {}
    while len(set(ports.values())) < len(DEFAULT_PORTS):
        ports = {default: free_port() for default in DEFAULT_PORTS}
    blocks = parse(localize((ROOT / tutorial).read_text(), ports))
    workdir = tmp_path / "scorehost"
    shutil.copytree(ROOT / "examples", workdir / "examples", ignore=shutil.ignore_patterns("model", "__pycache__"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{name: value for name, value in os.environ.items() if name not in ("DISPLAY", "WAYLAND_DISPLAY")},
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "SCOREHOST_HOME": str(tmp_path / "home"),
        "SCOREHOST_PORT": str(ports[5001]),
    }
    run = TutorialRun(workdir, env)
    problems = []
    try:
        for block in blocks:
            output = run.run(block)
            if block.expected is not None and not block.ready_url:
                found = check_output(block.expected, output)
                problems += [f"{tutorial}, block at line {block.line}: {problem}" for problem in found]
    finally:
        run.close()
        # Shown with a failure (or -s): which blocks the time went to.
        print(", ".join(f"line {line}: {seconds:.1f} s" for line, seconds in run.durations))
    assert not problems, "\n".join(problems)
