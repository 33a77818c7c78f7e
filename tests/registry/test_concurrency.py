"""Several processes at once, and processes killed mid-registration: versions stay whole and numbered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scorehost import Registry

# Registers files in a child process. PAUSE_AT ("copy" or "commit") makes it write READY and sleep at
# that point, so the test can kill it (or race it) exactly there.
_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from scorehost import Registry

    home, name, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    pause_at, sources = sys.argv[4], sys.argv[5:]

    class Pause:
        def __init__(self):
            self.moved = 0
        def begin(self, description, total):
            pass
        def advance(self, count):
            self.moved += count
            if pause_at == "copy" and self.moved >= 1 << 20:
                ready.write_text("copying")
                time.sleep(600)
        def end(self):
            if pause_at == "commit":
                ready.write_text("committing")
                time.sleep(float(os.environ.get("PAUSE_SECONDS", "600")))

    results = []
    with Registry(home) as registry:
        for source in sources:
            version = registry.register(name, source, progress=Pause())
            results.append([version.version, Path(source).read_bytes().hex()])
    print(json.dumps(results))
    """
)


def _child(
    home: Path,
    name: str,
    sources: list[Path],
    *,
    pause_at: str = "",
    ready: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    ready = ready or home.parent / f"ready-{name}-{time.monotonic_ns()}"
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), name, str(ready), pause_at or "-", *map(str, sources)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _blobs(home: Path) -> list[Path]:
    return [p for p in (home / "store" / "sha256").rglob("*") if p.is_file()]


def test_processes_registering_one_name_get_distinct_gapless_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Registry(home).close()
    children = []
    for worker in range(6):
        sources = []
        for index in range(5):
            source = tmp_path / f"w{worker}" / f"{index}" / "model.pkl"
            source.parent.mkdir(parents=True)
            source.write_bytes(f"worker {worker} model {index}".encode())
            sources.append(source)
        children.append(_child(home, "shared", sources))
    claimed: dict[int, str] = {}
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        for version, content in json.loads(out):
            assert version not in claimed, f"version {version} handed out twice"
            claimed[version] = content
    assert sorted(claimed) == list(range(1, 31))
    with Registry(home) as registry:
        for version, content in claimed.items():
            (stored,) = registry.files(f"shared:{version}")
            assert registry.store.path_of(stored.digest).read_bytes().hex() == content
        assert registry.verify().ok


def test_a_registration_killed_mid_copy_leaves_nothing_that_looks_valid(tmp_path: Path) -> None:
    home = tmp_path / "home"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    ready = tmp_path / "ready"
    child = _child(home, "m", [big], pause_at="copy", ready=ready)
    _wait_for(ready, child)
    child.send_signal(signal.SIGKILL)
    child.communicate()

    parts = list((home / "store" / "tmp").iterdir())
    assert len(parts) == 1
    assert parts[0].name.endswith(".part")
    assert _blobs(home) == []
    with Registry(home) as registry:
        assert registry.list_models() == []
        version = registry.register("m", big)  # the next registration works and sweeps the dead one's scraps
        assert version.version == 1
        assert list((home / "store" / "tmp").iterdir()) == []
        assert registry.verify().ok
        assert registry.download("m", tmp_path / "out").read_bytes() == big.read_bytes()


def test_gc_reclaims_the_scratch_copy_of_a_killed_registration(tmp_path: Path) -> None:
    home = tmp_path / "home"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    ready = tmp_path / "ready"
    child = _child(home, "m", [big], pause_at="copy", ready=ready)
    _wait_for(ready, child)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    (part,) = (home / "store" / "tmp").iterdir()
    size = part.stat().st_size
    assert size >= 1 << 20

    # One more, from a writer whose pid is alive (ours) but untouched for over an hour: abandoned too.
    old = home / "store" / "tmp" / f"{os.getpid()}.0123456789abcdef.part"
    old.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 3700, time.time() - 3700))
    fresh = home / "store" / "tmp" / f"{os.getpid()}.fedcba9876543210.part"
    fresh.write_bytes(b"y" * 10)  # a live writer's: kept
    with Registry(home) as registry:
        report = registry.gc()
    assert (report.scratch_files, report.scratch_bytes) == (2, size + 1000)
    assert list((home / "store" / "tmp").iterdir()) == [fresh]


def test_a_registration_killed_before_its_commit_leaves_no_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "model.pkl"
    source.write_bytes(b"complete bytes, never committed")
    ready = tmp_path / "ready"
    child = _child(home, "m", [source], pause_at="commit", ready=ready)
    _wait_for(ready, child)
    child.send_signal(signal.SIGKILL)
    child.communicate()

    with Registry(home) as registry:
        assert registry.list_models() == []  # no version, no model row: the transaction never began
        assert len(_blobs(home)) == 1  # an orphan: whole and correct bytes, but named by no version
        assert registry.gc().blobs == 1
        assert _blobs(home) == []
        assert registry.register("m", source).version == 1


def test_ctrl_c_during_a_registration_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 << 20))

    class Interrupt:
        def begin(self, description: str, total: int) -> None:
            pass

        def advance(self, count: int) -> None:
            raise KeyboardInterrupt

        def end(self) -> None:
            pass

    with Registry(tmp_path / "home") as registry:
        with pytest.raises(KeyboardInterrupt):
            registry.register("m", source, progress=Interrupt())
        assert registry.list_models() == []
        assert list((registry.home / "store" / "tmp").iterdir()) == []
        assert registry.register("m", source).version == 1


def test_deleting_while_another_process_registers_the_same_bytes_keeps_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "model.pkl"
    source.write_bytes(b"bytes two versions share")
    with Registry(home) as registry:
        registry.register("a", source)
        ready = tmp_path / "ready"
        # The child has stored its copy (the same blob) and pauses before committing its version.
        child = _child(home, "b", [source], pause_at="commit", ready=ready, env={"PAUSE_SECONDS": "1"})
        _wait_for(ready, child)
        result = registry.delete("a:1")
        assert result.reclaim_deferred
        assert result.bytes_freed == 0
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert json.loads(out)[0][0] == 1
        assert registry.verify().ok
        assert registry.download("b", tmp_path / "out").read_bytes() == source.read_bytes()
        assert registry.gc().blobs == 0


def test_processes_opening_a_new_workspace_at_once_create_it_once(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    sources = []
    for index in range(4):
        source = tmp_path / f"s{index}" / "model.pkl"
        source.parent.mkdir()
        source.write_bytes(f"model {index}".encode())
        sources.append(source)
    children = [_child(home, f"m{index}", [source]) for index, source in enumerate(sources)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert json.loads(out)[0][0] == 1
    with Registry(home) as registry:
        assert [model.name for model in registry.list_models()] == ["m0", "m1", "m2", "m3"]
