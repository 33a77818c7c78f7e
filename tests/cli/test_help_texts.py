"""Every command's `--help` explains each option and shows an example: the whole click tree, walked in-process.

The convention: a command's examples are its epilog, an `Examples:` block of lines that run as written (written
with `scorehost.cli.help_text.examples`), after the options.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from scorehost.cli import cli


def _commands(
    command: click.Command = cli, path: tuple[str, ...] = ("scorehost",)
) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def _example_lines(command: click.Command) -> list[str]:
    """The lines of the epilog's `Examples:` block."""
    lines = (command.epilog or "").splitlines()
    if "Examples:" not in lines:
        return []
    found = []
    for line in lines[lines.index("Examples:") + 1 :]:
        if not line.startswith("  "):
            break
        found.append(line.strip())
    return found


def _problems() -> set[tuple[str, str]]:
    """(command, what it lacks): `help`, `example`, or `help of --OPTION`."""
    found: set[tuple[str, str]] = set()
    for path, command in _commands():
        if not command.hidden:  # hidden: run by scorehost itself (the control plane, the gateway)
            if not (command.help or "").strip():
                found.add((path, "help"))
            if not any(line.startswith("scorehost ") for line in _example_lines(command)):
                found.add((path, "example"))
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                found.add((path, f"help of {param.opts[-1]}"))
    return found


def test_every_command_has_help_and_an_example_and_every_option_a_description() -> None:
    problems = _problems()
    missing = sorted(problems)
    assert not missing, "give these a help text or an `Examples:` epilog (scorehost.cli.help_text.examples):\n" + (
        "\n".join(f"  {path}: {what}" for path, what in missing)
    )


def test_examples_name_commands_that_exist() -> None:
    """An example's `scorehost A B` is a command of the tree (a renamed command leaves no stale example)."""
    known = {path for path, _ in _commands()}
    for path, command in _commands():
        for line in _example_lines(command):
            words = [word for word in line.split() if re.fullmatch(r"[a-z][a-z0-9-]*", word)]
            if not line.startswith("scorehost "):
                continue
            prefix = ["scorehost"]
            for word in words[1:]:
                if " ".join((*prefix, word)) not in known:
                    break
                prefix.append(word)
            assert len(prefix) > 1, f"{path}: the example {line!r} names no scorehost command"
            leaf = dict(_commands())[" ".join(prefix)]
            assert not isinstance(leaf, click.Group), f"{path}: the example {line!r} stops at a group"


@pytest.mark.parametrize("path", [path for path, _ in _commands()])
def test_help_renders(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split()[1:], "--help"], prog_name="scorehost", terminal_width=100)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {path}")


def test_a_progress_bar_says_what_it_follows() -> None:
    """`models verify` re-hashes what the store holds: its bar follows no copy."""
    shown = {
        name: CliRunner().invoke(cli, ["models", name, "--help"], terminal_width=200).output
        for name in ("register", "download", "verify")
    }
    assert "while re-hashing 8 MB or more" in shown["verify"]
    assert "cop" not in shown["verify"].split("--progress", 1)[1].split("\n")[0]
    assert "while copying 8 MB or more" in shown["register"]
    assert "while copying 8 MB or more" in shown["download"]


def test_sizes_take_units_everywhere() -> None:
    """The gateway's sizes read as `serve`'s do: 100MiB, 10MB, 512k or bytes, and its help shows them so."""
    from scorehost.cli.help_text import SIZE

    assert [SIZE.convert(text, None, None) for text in ("100MiB", "10MB", "512k", "1048576")] == [
        100 * 1024 * 1024,
        10_000_000,
        512_000,
        1_048_576,
    ]
    with pytest.raises(click.BadParameter, match="write e.g. 100MiB"):
        SIZE.convert("lots", None, None)
    shown = CliRunner().invoke(cli, ["gateway", "--help"], terminal_width=200).output
    assert re.search(r"--max-body-size SIZE .*\[default: 100MiB\]", shown), shown
    assert "--max-buffered SIZE" in shown
    refused = CliRunner().invoke(cli, ["gateway", "--max-body-size", "lots"])
    assert refused.exit_code == 2
    assert "'lots' is not a size; write e.g. 100MiB" in refused.output
