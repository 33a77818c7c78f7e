"""The parts of `serve --reload` and of its start-up log that need no server: what the folder watcher sees,
sockets joining a steered group, the options --reload refuses, help lines, and how an OTLP export is logged.
(tests/http/test_server_reload.py reloads a real server.)"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click
import pytest
from _sockets import accepted
from click.testing import CliRunner

from scorehost.cli import cli
from scorehost.cli.serve import serve_command
from scorehost.http.steering import Steering
from scorehost.http.watch import SourceWatcher
from scorehost.sockets import bind_sockets
from scorehost.telemetry.spans import describe_export


def touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_watcher_sees_code_configuration_and_models_and_nothing_else(tmp_path: Path) -> None:
    touch(tmp_path / "score.py")
    watcher = SourceWatcher(tmp_path)
    assert watcher.changes() == []
    for ignored in (
        "__pycache__/score.cpython-311.pyc",
        ".git/index",
        ".hidden.py",
        ".#score.py",  # emacs lock
        "#score.py#",  # emacs autosave
        "score.py~",
        ".score.py.swp",
        "score.py.tmp",
        "requests.log",
        "collected/2026/01/01/00/data.jsonl",
        "notes.txt",
        "venv/lib/python3.11/site-packages/lib.py",
        "node_modules/x/index.py",
    ):
        touch(tmp_path / ignored)
    touch(tmp_path / "venv" / "pyvenv.cfg")
    assert watcher.changes() == []
    touch(tmp_path / "score.py", "changed")
    touch(tmp_path / "helpers" / "parse.py")
    touch(tmp_path / "model" / "model.pkl")
    touch(tmp_path / "config.yaml")
    assert watcher.changes() == ["config.yaml", "helpers/parse.py", "model/model.pkl", "score.py"]
    assert watcher.changes() == []
    (tmp_path / "config.yaml").unlink()
    assert watcher.changes() == ["config.yaml"]


def test_a_save_of_the_same_size_within_the_same_second_is_seen(tmp_path: Path) -> None:
    script = tmp_path / "score.py"
    touch(script, "return 1")
    watcher = SourceWatcher(tmp_path)
    stat = script.stat()
    touch(script, "return 2")
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # one nanosecond later
    assert watcher.changes() == ["score.py"]
    # An editor that saves by renaming a new file over the old one: the same time and size, another inode.
    replacement = tmp_path / "score.py.new"
    replacement.write_text("return 3")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    os.replace(replacement, script)
    assert watcher.changes() == ["score.py"]


def test_sockets_that_join_the_group_get_connections_only_when_steered_to() -> None:
    # One worker's socket, as `serve` binds it; --reload adds sockets as it does (bind, join, steer, listen).
    sockets = bind_sockets("127.0.0.1", 0, 1)
    steering = Steering(sockets)
    try:
        for _ in range(2):
            new = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            new.bind(sockets[0].getsockname())
            steering.join(new)
            steering.serve({sockets[0]})
            new.listen(128)
            sockets.append(new)
            assert steering.active
            assert set(accepted(sockets, 40)) == {0}  # the new one gets nothing while it loads
        steering.serve({sockets[2]})
        assert set(accepted(sockets, 40)) == {2}
        steering.serve({sockets[1], sockets[2]})
        assert set(accepted(sockets, 40)) == {1, 2}
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize(
    ("arguments", "environment", "named"),
    [
        (["--preload"], {}, "drop --preload"),
        ([], {"WORKER_PRELOAD": "true"}, "drop --preload (SCOREHOST_PRELOAD / WORKER_PRELOAD)"),
        (["--uds", "/tmp/never.sock"], {}, "serve on --port instead of --uds"),
    ],
)
def test_reload_refuses_what_it_cannot_honour(
    tmp_path: Path, arguments: list[str], environment: dict[str, str], named: str
) -> None:
    touch(tmp_path / "score.py", "def init():\n    pass\n\n\ndef run(data):\n    return data\n")
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "score.py"), "--reload", *arguments], env=environment)
    assert result.exit_code == 2, result.output
    assert named in result.output


def test_reload_needs_a_script() -> None:
    # Through the group, as users run it: click keeps the help option a command first made, and a bare
    # `serve_command` would make it without the group's `-h` (test_serve_help[-h] then failed in the same process).
    result = CliRunner().invoke(cli, ["serve", "--reload", "--model", "sklearn-iris"])
    assert result.exit_code == 2, result.output
    assert "--reload watches an entry script's folder: give SCRIPT" in result.output


def test_every_serve_option_has_a_help_line() -> None:
    missing = [param.name for param in serve_command.params if isinstance(param, click.Option) and not param.help]
    assert missing == []


@pytest.mark.parametrize(
    ("endpoint", "environment", "logged"),
    [
        ("http://127.0.0.1:4318/v1/traces", {}, "http://127.0.0.1:4318/v1/traces over OTLP/HTTP"),
        (
            "https://user:s3cret@collector.example:4318/v1/traces?api-key=s3cret#s3cret",
            {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cret"},
            "https://collector.example:4318/v1/traces (its query not logged) over OTLP/HTTP, with the headers of "
            "OTEL_EXPORTER_OTLP_HEADERS (not logged)",
        ),
        (
            "http://[::1]:4318/v1/traces",
            {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-key=s3cret", "OTEL_EXPORTER_OTLP_HEADERS": "a=s3cret"},
            "http://[::1]:4318/v1/traces over OTLP/HTTP, with the headers of OTEL_EXPORTER_OTLP_TRACES_HEADERS "
            "(not logged)",
        ),
    ],
)
def test_an_otlp_export_is_logged_without_its_credentials(
    endpoint: str, environment: dict[str, str], logged: str
) -> None:
    assert describe_export(endpoint, environment) == logged
