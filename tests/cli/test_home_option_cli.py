"""`--home` before or after the subcommand, for every group that works in a workspace (in-process, real files)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from scorehost.cli import cli

_WORKSPACE_GROUPS = ("controlplane", "deployments", "endpoints", "environments", "models")


def _home_option(command: click.Command) -> click.Option | None:
    return next((p for p in command.params if isinstance(p, click.Option) and "--home" in p.opts), None)


def _leaves(group: click.Group, path: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_every_workspace_group_and_each_of_its_commands_take_home() -> None:
    groups = {name: command for name, command in cli.commands.items() if isinstance(command, click.Group)}
    with_home = {name for name, group in groups.items() if _home_option(group) is not None}
    assert with_home == set(_WORKSPACE_GROUPS)
    for name in _WORKSPACE_GROUPS:
        group = groups[name]
        assert isinstance(group, click.Group)
        lacking = [path for path, command in _leaves(group, name) if _home_option(command) is None]
        assert not lacking, f"commands without --home: {lacking}"
    for name in ("console", "invoke", "gateway", "serve"):
        assert _home_option(cli.commands[name]) is not None, name


def _run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_models_take_home_before_or_after_the_command(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run("models", "--home", str(first), "register", "a", str(model)).exit_code == 0
    assert _run("models", "register", "b", str(model), "--home", str(second)).exit_code == 0

    def names(*args: str) -> list[str]:
        result = _run("models", *args)
        assert result.exit_code == 0, result.output
        return [model["name"] for model in json.loads(result.stdout)]

    assert names("--home", str(first), "list", "--json") == ["a"]
    assert names("list", "--home", str(first), "--json") == ["a"]
    assert names("--home", str(first), "list", "--home", str(second), "--json") == ["b"]  # the later one wins
    assert names("list", "--json") == []  # neither: SCOREHOST_HOME, the test's own
    assert Path(os.environ["SCOREHOST_HOME"]) not in (first, second)


@pytest.mark.parametrize(
    "args",
    [
        ("controlplane", "--home", "{home}", "status", "--json"),
        ("controlplane", "status", "--home", "{home}", "--json"),
    ],
)
def test_controlplane_takes_home_before_or_after_the_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = tmp_path / "workspace"
    result = _run(*(arg.format(home=home) for arg in args))
    assert result.exit_code == 1  # not running
    assert json.loads(result.stdout)["workspace"] == str(home)


def test_environments_take_home_before_or_after_the_command(tmp_path: Path) -> None:
    registered = tmp_path / "environment.yml"
    registered.write_text("name: plain\nversion: 1\nimage: mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu\n")
    home = tmp_path / "workspace"
    created = _run("environments", "--home", str(home), "create", "-f", str(registered), "--no-build", "--json")
    assert created.exit_code == 0, created.output
    for args in (("--home", str(home), "list"), ("list", "--home", str(home))):
        listed = _run("environments", *args, "--registered", "--json")
        assert [item["name"] for item in json.loads(listed.stdout)] == ["plain"], args
    assert json.loads(_run("environments", "list", "--registered", "--json").stdout) == []
