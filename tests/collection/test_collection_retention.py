"""prune(): by age (whole partitions), by size (oldest files first), never an open file, tolerant of races."""

from __future__ import annotations

import calendar
import os
import threading
from pathlib import Path

from scorehost.collection import prune

NOW = float(calendar.timegm((2024, 5, 10, 12, 30, 0)))
HOUR = 3600.0


def data_file(root: Path, relative: str, size: int = 100, mtime: float = NOW - 3 * HOUR) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * (size - 1) + b"\n")
    os.utime(path, (mtime, mtime))
    return path


def test_age_removes_partitions_that_ended_before_the_limit(tmp_path: Path) -> None:
    old_hour = data_file(tmp_path, "model_inputs/2024/05/10/09/a-1.jsonl")  # ended 10:00, 2.5 h ago
    recent = data_file(tmp_path, "model_inputs/2024/05/10/10/a-1.jsonl")  # ended 11:00, 1.5 h ago
    old_day = data_file(tmp_path, "request/2024/05/08/b-2.jsonl")  # a Day partition
    this_year = data_file(tmp_path, "request/2024/c-3.jsonl")  # a Year partition: not over yet
    report = prune(tmp_path, max_age_seconds=2 * HOUR, max_bytes=None, now=NOW)
    assert not old_hour.exists()
    assert not old_day.exists()
    assert recent.exists()
    assert this_year.exists()
    assert (report.files_removed, report.bytes_removed, report.bytes_left) == (2, 200, 200)
    assert not (tmp_path / "model_inputs/2024/05/10/09").exists()  # its empty folders go too
    assert not (tmp_path / "request/2024/05/08").exists()
    assert (tmp_path / "request/2024/05").is_dir()  # this month is not over: a writer may be about to use it
    assert (tmp_path / "model_inputs/2024/05/10/10").is_dir()


def test_size_removes_the_oldest_files_first(tmp_path: Path) -> None:
    files = [data_file(tmp_path, f"model_inputs/2024/05/10/{hour:02d}/a-1.jsonl", size=1000) for hour in range(5)]
    later = data_file(tmp_path, "request/2024/05/10/00/a-1.jsonl", size=1000, mtime=NOW - 2 * HOUR)
    report = prune(tmp_path, max_age_seconds=None, max_bytes=5500, now=NOW)
    assert (report.files_removed, report.bytes_left) == (1, 5000)
    assert not files[0].exists()
    assert later.exists()  # the same partition as the oldest, written to later: it goes after it
    report = prune(tmp_path, max_age_seconds=None, max_bytes=2500, now=NOW)
    assert [f.exists() for f in [*files, later]] == [False, False, False, True, True, False]
    assert (report.files_removed, report.bytes_removed, report.bytes_left) == (3, 3000, 2000)


def test_size_never_removes_open_or_active_files(tmp_path: Path) -> None:
    kept = data_file(tmp_path, "model_inputs/2024/05/10/00/mine.jsonl", size=1000)
    active = data_file(tmp_path, "model_inputs/2024/05/10/01/other.jsonl", size=1000, mtime=NOW - 10)
    spare = data_file(tmp_path, "model_inputs/2024/05/10/02/old.jsonl", size=1000)
    report = prune(tmp_path, max_age_seconds=None, max_bytes=500, now=NOW, keep={kept})
    assert kept.exists()
    assert active.exists()  # another process may still be appending to it
    assert not spare.exists()
    assert report.bytes_left == 2000


def test_age_spares_kept_files_and_their_folders(tmp_path: Path) -> None:
    kept = data_file(tmp_path, "model_inputs/2024/01/01/00/mine.jsonl")
    data_file(tmp_path, "model_inputs/2024/01/01/00/other.jsonl")
    prune(tmp_path, max_age_seconds=HOUR, max_bytes=None, now=NOW, keep=[kept])
    assert [p.name for p in kept.parent.iterdir()] == ["mine.jsonl"]


def test_files_that_are_not_collected_data_are_left_alone(tmp_path: Path) -> None:
    notes = data_file(tmp_path, "model_inputs/2024/01/01/00/notes.txt")
    stray = data_file(tmp_path, "model_inputs/old/a.jsonl")
    top = data_file(tmp_path, "README.jsonl")
    no_such_day = data_file(tmp_path, "model_inputs/2023/02/30/00/a.jsonl")
    not_ascii = data_file(tmp_path, "model_inputs/２０２３/a.jsonl")
    report = prune(tmp_path, max_age_seconds=HOUR, max_bytes=1, now=NOW)
    assert notes.exists()
    assert stray.exists()
    assert top.exists()
    assert no_such_day.exists()
    assert not_ascii.exists()
    assert report.files_removed == 0


def test_several_pruners_on_one_tree_at_once_do_not_trip(tmp_path: Path) -> None:
    for day in range(1, 29):
        for hour in range(0, 24, 3):
            data_file(tmp_path, f"model_inputs/2024/02/{day:02d}/{hour:02d}/a-1.jsonl")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            prune(tmp_path, max_age_seconds=HOUR, max_bytes=None, now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(tmp_path.rglob("*.jsonl")) == []
    assert [p.name for p in (tmp_path / "model_inputs").iterdir()] == ["2024"]  # the year is not over
    assert list((tmp_path / "model_inputs/2024").iterdir()) == []


def test_a_missing_directory_is_nothing_to_prune(tmp_path: Path) -> None:
    assert prune(tmp_path / "absent", max_age_seconds=HOUR, max_bytes=1, now=NOW).files_removed == 0
