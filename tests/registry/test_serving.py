"""Each server's own model folder (`Registry.model_dir`): real processes that write to it, die and fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scorehost import Registry
from scorehost.registry.serving import clone

# Lays out `ref` as a server does, then acts as a script might, prints the folder and waits for stdin to close.
# ACTION: "tamper" (append to the model file, write a file beside it), "fork" (leave a child holding the
# folder, as a worker outlives a killed supervisor), "fork-exit" (a child that exits normally), or "none".
_SERVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from scorehost import Registry

    home, ref, action = sys.argv[1:4]
    with Registry(home) as registry:
        model_dir = registry.model_dir([ref])
    if action == "tamper":
        with open(model_dir / "model.pkl", "ab") as model:  # as root, modes do not stop this
            model.write(b"appended by init()")
        (model_dir / "model.joblib").write_bytes(b"trained on the spot")
    if action in ("fork", "fork-exit") and os.fork() == 0:
        if action == "fork-exit":
            sys.exit(0)  # runs the atexit handlers it inherited: they must not remove its server's folder
        sys.stdin.read()
        os._exit(0)
    print(model_dir, flush=True)
    sys.stdin.read()
    """
)


class Server:
    """A child process serving `ref` from its own folder."""

    def __init__(self, home: Path, ref: str, action: str = "none") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(home), ref, action],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, f"the child exited with {self.process.wait(60)}"
        self.model_dir = Path(line)

    @property
    def folder(self) -> Path:
        """The server's folder: servers/<pid>.<token>."""
        return next(parent for parent in self.model_dir.parents if parent.parent.name == "servers")

    def stop(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        assert self.process.wait(60) == 0
        self.process.stdout.close()

    def kill(self) -> None:
        assert self.process.stdout is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(60)
        self.process.stdout.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    model = tmp_path / "src" / "model.pkl"
    model.parent.mkdir()
    model.write_bytes(b"the registered model bytes")
    with Registry(tmp_path / "home") as registry:
        registry.register("digits", model)
    return tmp_path / "home"


def test_a_script_that_writes_to_its_model_changes_nothing_stored_or_served_elsewhere(home: Path) -> None:
    tampering = Server(home, "digits:1", "tamper")
    try:
        assert (tampering.model_dir / "model.pkl").read_bytes() == b"the registered model bytesappended by init()"
        with Registry(home) as registry:
            assert registry.verify().ok  # the stored blob is untouched
        other = Server(home, "digits:1")
        try:
            assert sorted(os.listdir(other.model_dir)) == ["model.pkl"]  # no model.joblib
            assert (other.model_dir / "model.pkl").read_bytes() == b"the registered model bytes"
        finally:
            other.stop()
    finally:
        tampering.stop()


def test_a_server_that_exits_removes_its_folder(home: Path) -> None:
    server = Server(home, "digits:1", "fork-exit")
    assert server.folder.is_dir()
    time.sleep(0.5)  # the forked child exited normally, running the atexit handlers it inherited
    assert server.folder.is_dir()
    server.stop()
    assert not server.folder.exists()


def test_the_folder_of_a_killed_server_is_reclaimed_once_its_workers_are_gone(home: Path) -> None:
    server = Server(home, "digits:1", "fork")  # its forked child holds the folder's lock, as a worker does
    server.kill()
    with Registry(home) as registry:
        assert registry.gc().server_folders == 0  # the server is dead, its worker is not
        assert (server.model_dir / "model.pkl").is_file()
        assert server.process.stdin is not None
        server.process.stdin.close()  # the worker (which shares the pipe) reads EOF and exits
        deadline = time.monotonic() + 60
        while registry.gc().server_folders == 0:
            assert time.monotonic() < deadline, "the folder was never reclaimed"
            time.sleep(0.1)
    assert not server.folder.exists()


def test_the_next_server_reclaims_the_folders_of_dead_ones(home: Path) -> None:
    dead = Server(home, "digits:1")
    dead.kill()
    assert dead.process.stdin is not None
    dead.process.stdin.close()
    assert dead.folder.is_dir()
    alive = Server(home, "digits:1")
    try:
        assert not dead.folder.exists()
        assert sorted(path.name for path in (home / "servers").iterdir()) == [alive.folder.name]
    finally:
        alive.stop()


def test_a_clone_is_independent_of_its_source(tmp_path: Path) -> None:
    source = tmp_path / "blob"
    source.write_bytes(b"x" * 100_000)
    target = tmp_path / "copy"
    clone(source, target)
    with open(target, "ab") as appending:
        appending.write(b"more")
    assert source.read_bytes() == b"x" * 100_000
    assert source.stat().st_nlink == 1
    with pytest.raises(FileExistsError):
        clone(source, target)
