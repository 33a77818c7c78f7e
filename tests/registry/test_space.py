"""A full disk, for real: a small tmpfs as the workspace (root only), and a file size limit (`ulimit -f`).

Every `models` command and `serve --model` says what is full, where, how much was needed and what to do,
in one line: no traceback.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scorehost import Registry
from scorehost.errors import StorageFull

SCOREHOST = Path(sys.executable).parent / "scorehost"
SCRIPTS = Path(__file__).parents[1] / "scripts"
MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 4 MiB file system (tmpfs), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (uid {os.getuid()}: {done.stderr.strip()}); the ulimit test still runs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _fill(disk: Path, leave: int = 0) -> None:
    """Write filler until only about `leave` bytes are free."""
    found = os.statvfs(disk)
    free = found.f_bavail * found.f_frsize
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with contextlib.suppress(OSError):  # a write that fills the disk may stop short, or fail
            os.write(fd, b"\0" * max(free - leave, 0))
    finally:
        os.close(fd)


def _run(*args: str, home: Path, code: int) -> str:
    """A real `scorehost` command; returns its stderr, which must hold no traceback."""
    env = {**os.environ, "SCOREHOST_HOME": str(home)}
    done = subprocess.run([str(SCOREHOST), *args], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stdout + done.stderr
    return done.stderr


def test_registering_more_than_fits_names_the_file_and_the_size(small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "workspace"
    big = _file(tmp_path / "weights.bin", 6 * MiB)
    with Registry(home) as registry:
        with pytest.raises(StorageFull) as raised:
            registry.register("m", big)
        assert raised.value.message.startswith(
            f"storing {big} needs 6.3 MB, but the disk holding the workspace {home} is"
        )
        assert "Free space on that disk, or move the workspace to a larger one (SCOREHOST_HOME)" in raised.value.message
        assert list((home / "store" / "tmp").iterdir()) == []  # the partial copy is gone
        assert registry.list_models() == []
        assert registry.register("m", _file(tmp_path / "small.bin", 1000)).version == 1  # room again


def test_every_models_command_on_a_full_disk_says_so_in_one_line(small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "workspace"
    model = _file(tmp_path / "model.pkl", 20_000)
    _run("models", "register", "m", str(model), home=home, code=0)
    _fill(small_disk)
    commands = [
        ("list",),
        ("show", "m"),
        ("alias", "m", "prod", "1"),
        ("register", "m", str(model)),
        ("download", "m", str(tmp_path / "out")),
        ("verify",),
        ("delete", "m:1"),
        ("gc",),
    ]
    for command in commands:
        err = _run("models", *command, home=home, code=1)
        assert err.count("\n") == 1, (command, err)
        assert err.startswith(f"Error: the registry database {home / 'registry.db'} cannot be used: the disk holding ")
        assert "is full (0 bytes free)" in err, err
    (small_disk / "filler").unlink()
    assert (
        "m"
        in subprocess.run(
            [str(SCOREHOST), "models", "list"],
            capture_output=True,
            text=True,
            env={**os.environ, "SCOREHOST_HOME": str(home)},
        ).stdout
    )


def test_serve_model_without_room_for_its_copy_names_the_file_and_the_size(small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "workspace"
    with Registry(home) as registry:
        registry.register("m", _file(tmp_path / "model.pkl", 2 * MiB))
    _fill(small_disk, leave=MiB)
    err = _run("serve", str(SCRIPTS / "echo.py"), "--port", "0", "--model", "m:1", home=home, code=3)
    assert (
        f"Cannot serve --model m:1: copying m:1 model.pkl into this server's own folder needs 2.1 MB, but the disk "
        f"holding the workspace {home} is full"
    ) in err, err
    assert list((home / "servers").iterdir()) == []  # the partial folder is gone


# The same limits through the file size limit of one process: EFBIG instead of ENOSPC, on any machine.
def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_a_file_size_limit_is_named_with_its_fix(tmp_path: Path) -> None:
    home = tmp_path / "workspace"
    big = _file(tmp_path / "weights.bin", 3 * MiB)
    env = {**os.environ, "SCOREHOST_HOME": str(home)}
    done = subprocess.run(
        [str(SCOREHOST), "models", "register", "m", str(big)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=lambda: _limited(MiB),
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"Error: storing {big} needs 3.1 MB, more than this process may write to one file")
    assert list((home / "store" / "sha256").iterdir()) == []  # no short copy stored under the whole file's sha256
    assert "its file size limit (`ulimit -f`) is 1.0 MB. Raise the limit (`ulimit -f unlimited`)" in done.stderr
    assert "Traceback" not in done.stderr
