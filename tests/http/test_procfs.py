"""Reading /proc and the cgroup files: a process's state and memory, and OOM kills counted where the machine
counts them (cgroup v2, v1, nested cgroups, the kernel's own count), on copies of those files' layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scorehost.http.procfs import oom_kills, process_state, resident_bytes


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    write(root / "vmstat", "pgfault 100\noom_kill 7\npgmajfault 1\n")
    return root


def test_state_follows_the_last_parenthesis_of_the_command_name(proc: Path) -> None:
    write(proc / "42" / "stat", "42 (a) b (c) T 1 42 42 0 -1\n")
    assert process_state(42, proc) == "T"
    assert process_state(43, proc) is None


def test_state_and_memory_of_this_process() -> None:
    assert process_state(os.getpid()) == "R"
    rss = resident_bytes(os.getpid())
    assert rss is not None
    assert rss > 1024 * 1024
    assert resident_bytes(2**22 + 1) is None


def test_cgroup_v2_counts_its_own_and_its_ancestors_kills(proc: Path, tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "0::/system.slice/score.service\n")
    write(cgroups / "system.slice" / "score.service" / "memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    write(cgroups / "system.slice" / "memory.events", "oom 1\noom_kill 1\n")
    assert oom_kills(proc, cgroups) == 3
    write(cgroups / "system.slice" / "memory.events", "oom 2\noom_kill 2\n")  # a kill under the parent's limit
    assert oom_kills(proc, cgroups) == 4


def test_cgroup_v1_reads_memory_oom_control(proc: Path, tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    write(proc / "self" / "cgroup", "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n")
    write(cgroups / "memory" / "docker" / "abc" / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    assert oom_kills(proc, cgroups) == 5


def test_without_cgroup_files_the_kernels_count(proc: Path, tmp_path: Path) -> None:
    write(proc / "self" / "cgroup", "0::/\n")
    assert oom_kills(proc, tmp_path / "nothing") == 7
    assert oom_kills(tmp_path / "no-proc", tmp_path / "nothing") == 0
