"""CollectionWriter with real files: partitions, failed writes cut back, a hung disk, real processes, kill -9."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from scorehost.collection import (
    DISK_FULL,
    QUEUE_FULL,
    CollectionSettings,
    CollectionWriter,
    ObjectRow,
    PayloadRow,
    iter_lines,
)

T1 = 1669884690.0  # 2022-12-01T08:51:30Z
T2 = T1 + 3600  # the next hour
CHILD = Path(__file__).with_name("_collection_child.py")
PID = os.getpid()


def settings_for(directory: Path, **changes: Any) -> CollectionSettings:
    return CollectionSettings(directory=directory, max_age_seconds=None, max_bytes=None, **changes)


@pytest.fixture
def make_writer() -> Iterator[Any]:
    writers: list[CollectionWriter] = []

    def make(settings: CollectionSettings, **kw: Any) -> CollectionWriter:
        writer = CollectionWriter(settings, hostname="host", **kw)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close(timeout=5)


def lines_of(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n") or not data
    return [orjson.loads(line) for line in data.splitlines()]


def row(i: int, moment: float = T1, collection: str = "model_inputs") -> ObjectRow:
    return ObjectRow(collection, moment, f"r{i}", {"i": i})


@pytest.mark.parametrize(
    ("rate", "folder"),
    [
        ("Year", "2022"),
        ("Month", "2022/12"),
        ("Day", "2022/12/01"),
        ("Hour", "2022/12/01/08"),
        ("Minute", "2022/12/01/08/51"),
    ],
)
def test_partitions_follow_the_rolling_rate(tmp_path: Path, make_writer: Any, rate: str, folder: str) -> None:
    writer = make_writer(settings_for(tmp_path / "data", rolling_rate=rate))
    assert writer.offer(row(1))
    assert writer.flush()
    path = tmp_path / "data" / "model_inputs" / folder / f"host-{PID}.jsonl"
    assert [r["data"] for r in lines_of(path)] == [{"i": 1}]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640 & ~umask
    assert path.parent.stat().st_mode & 0o777 == 0o750 & ~umask
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o750 & ~umask


def test_rows_are_grouped_by_collection_and_partition(tmp_path: Path, make_writer: Any) -> None:
    written: list[tuple[str, int, int]] = []
    writer = make_writer(
        settings_for(tmp_path),
        on_written=lambda collection, n: written.append((collection, n, threading.get_ident())),
    )
    for i in range(3):
        writer.offer(row(i))
        writer.offer(row(i, T2))
        writer.offer(PayloadRow("request", T1, f"r{i}", b"{}", "application/json", None, "/score", "POST"))
    writer.close()
    assert len(lines_of(tmp_path / "model_inputs/2022/12/01/08" / f"host-{PID}.jsonl")) == 3
    assert len(lines_of(tmp_path / "model_inputs/2022/12/01/09" / f"host-{PID}.jsonl")) == 3
    assert [r["correlationid"] for r in lines_of(tmp_path / "request/2022/12/01/08" / f"host-{PID}.jsonl")] == [
        "r0",
        "r1",
        "r2",
    ]
    assert writer.stats().written == {"model_inputs": 6, "request": 3}
    assert sum(n for _, n, _ in written) == 9
    assert {ident for _, _, ident in written} != {threading.get_ident()}  # counted on the writer thread


def test_close_writes_what_is_queued_and_later_offers_are_dropped(tmp_path: Path, make_writer: Any) -> None:
    writer = make_writer(settings_for(tmp_path))
    for i in range(100):
        writer.offer(row(i))
    assert writer.close()
    assert len(lines_of(tmp_path / "model_inputs/2022/12/01/08" / f"host-{PID}.jsonl")) == 100
    assert not writer.offer(row(101))
    assert writer.stats().dropped == {("model_inputs", "closed"): 1}


def test_offers_from_many_threads_all_land(tmp_path: Path, make_writer: Any) -> None:
    writer = make_writer(settings_for(tmp_path, queue_rows=20_000, queue_bytes=100 * 1024 * 1024))

    def offer_many(base: int) -> None:
        for i in range(1000):
            writer.offer(row(base + i))

    threads = [threading.Thread(target=offer_many, args=(n * 10_000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close(timeout=10)
    assert writer.stats().written == {"model_inputs": 8000}
    found = {r["data"]["i"] for r in iter_lines_rows(tmp_path)}
    assert len(found) == 8000


def iter_lines_rows(directory: Path) -> list[dict[str, Any]]:
    reader = iter_lines(directory)
    rows = [orjson.loads(line) for line in reader]
    assert reader.skipped == reader.incomplete == 0
    return rows


def test_an_unencodable_object_is_dropped_and_counted(tmp_path: Path, make_writer: Any) -> None:
    writer = make_writer(settings_for(tmp_path))
    writer.offer(ObjectRow("model_inputs", T1, "r", {"n": 2**70}))
    writer.offer(row(1))
    writer.flush()
    assert writer.stats().dropped == {("model_inputs", "encode_error"): 1}
    assert writer.stats().written == {"model_inputs": 1}


def test_a_file_removed_underneath_is_created_again(tmp_path: Path, make_writer: Any) -> None:
    writer = make_writer(settings_for(tmp_path))
    writer.offer(row(1))
    writer.flush()
    path = tmp_path / "model_inputs/2022/12/01/08" / f"host-{PID}.jsonl"
    path.unlink()
    writer.offer(row(2))
    writer.flush()
    assert [r["data"]["i"] for r in lines_of(path)] == [2]


def test_retention_runs_when_the_writer_starts(tmp_path: Path, make_writer: Any) -> None:
    old = tmp_path / "model_inputs/2001/01/01/00/other-1.jsonl"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"{}\n")
    writer = make_writer(CollectionSettings(directory=tmp_path, max_age_seconds=86400))
    writer.flush()
    assert not old.exists()
    assert not (tmp_path / "model_inputs/2001").exists()


def test_disk_full_drops_the_rows_warns_once_and_carries_on(
    tmp_path: Path, make_writer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "model_inputs/2022/12/01/08"
    folder.mkdir(parents=True)
    (folder / f"host-{PID}.jsonl").symlink_to("/dev/full")  # every write there fails with ENOSPC
    dropped: list[tuple[str, str, int]] = []
    writer = make_writer(settings_for(tmp_path), on_dropped=lambda *args: dropped.append(args))
    caplog.set_level(logging.WARNING, logger="scorehost.collection")
    for i in range(5):
        writer.offer(row(i))
    writer.offer(row(5, T2))
    writer.flush()
    for i in range(3):
        writer.offer(row(i))
    writer.flush()
    assert writer.stats().dropped == {("model_inputs", DISK_FULL): 8}
    assert sum(n for _, reason, n in dropped if reason == DISK_FULL) == 8
    assert len(lines_of(tmp_path / "model_inputs/2022/12/01/09" / f"host-{PID}.jsonl")) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "scorehost.collection"]
    assert len(warnings) == 1  # one per reason per 10 s
    assert "dropped 5 rows (disk_full): No space left on device writing" in warnings[0]
    assert "free space on that disk, or lower retention" in warnings[0]


def run_child(*args: str, timeout: float = 60) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(CHILD), *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    stats: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    stats["stderr"] = result.stderr
    return stats


def test_a_write_past_ulimit_f_is_cut_back_to_whole_rows_and_later_writes_succeed(tmp_path: Path) -> None:
    stats = run_child("fsize", str(tmp_path), "4096")
    full = tmp_path / "model_inputs/2022/12/01/08/51/shared-{}.jsonl".format(stats["pid"])
    assert full.stat().st_size <= 4096
    rows = lines_of(full)  # whole lines only: the write that crossed the limit kept its whole rows, no more
    large = len(rows) - 5
    assert [r["correlationid"] for r in rows] == ["small"] * 5 + ["large"] * large
    assert 0 < large < 40
    assert full.stat().st_size + len(encode_like(rows[-1])) > 4096  # the next row would not have fitted
    assert stats["dropped"] == {"model_inputs/disk_full": 40 - large}
    assert f"dropped {40 - large} rows (disk_full): File too large" in stats["stderr"]
    assert stats["written"] == {"model_inputs": 5 + large + 2}
    assert len(lines_of(tmp_path / "model_inputs/2022/12/01/09/51/shared-{}.jsonl".format(stats["pid"]))) == 2


def encode_like(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row) + b"\n"


def test_processes_writing_one_tree_at_once_read_back_intact(tmp_path: Path) -> None:
    children = [
        subprocess.Popen([sys.executable, str(CHILD), "write", str(tmp_path), "300"], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    assert all(out["written"] == {"model_inputs": 300} and not out["dropped"] for out in outputs)
    rows = iter_lines_rows(tmp_path)
    assert len(rows) == 1200
    assert {r["correlationid"] for r in rows} == {f"{out['pid']}-{i}" for out in outputs for i in range(300)}
    assert len({p.name for p in tmp_path.rglob("*.jsonl")}) == 4  # shared-<pid>.jsonl: one file per process
    times = [r["time"] for r in rows]
    assert times == sorted(times)


def test_kill_9_leaves_only_whole_lines(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, str(CHILD), "forever", str(tmp_path)], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            threading.Event().wait(0.6)
        finally:
            child.send_signal(signal.SIGKILL)
    for path in tmp_path.rglob("*.jsonl"):
        complete, _, _tail = path.read_bytes().rpartition(b"\n")
        # Each line parses; a write cut by the kill could only leave an unterminated tail, which readers skip.
        for line in complete.splitlines():
            assert isinstance(orjson.loads(line), dict)
    reader = iter_lines(tmp_path)
    assert sum(1 for _ in reader) >= 20
    assert reader.skipped == 0


def hang(tmp_path: Path) -> Path:
    """A FIFO where the T1 file goes: opening it for writing blocks until a reader comes, like a hung disk."""
    folder = tmp_path / "model_inputs/2022/12/01/08"
    folder.mkdir(parents=True)
    fifo = folder / f"host-{PID}.jsonl"
    os.mkfifo(fifo)
    return fifo


def wait_until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out")


def test_a_hung_disk_never_blocks_offer_and_writing_resumes(tmp_path: Path, make_writer: Any) -> None:
    fifo = hang(tmp_path)
    dropped_on: set[int] = set()
    writer = make_writer(
        settings_for(tmp_path, queue_rows=50), on_dropped=lambda *args: dropped_on.add(threading.get_ident())
    )
    assert writer.offer(row(0))
    wait_until(lambda: writer.stats().queued == 0)  # the writer thread took it, and is stuck opening the FIFO
    accepted = [writer.offer(row(i, T2)) for i in range(1, 201)]
    assert accepted.count(True) == 50
    assert writer.stats().dropped == {("model_inputs", QUEUE_FULL): 150}
    assert dropped_on == {threading.get_ident()}  # queue_full is counted on the offering thread
    assert not writer.flush(timeout=0.3)

    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the disk comes back
    try:
        assert writer.flush(timeout=10)
        assert orjson.loads(os.read(reader, 65536))["data"] == {"i": 0}
    finally:
        os.close(reader)
    rows = lines_of(tmp_path / "model_inputs/2022/12/01/09" / f"host-{PID}.jsonl")
    assert [r["data"]["i"] for r in rows] == list(range(1, 51))
    assert writer.offer(row(300, T2))


def test_queue_bytes_bounds_payloads_and_keeps_only_what_is_written(tmp_path: Path, make_writer: Any) -> None:
    fifo = hang(tmp_path)
    writer = make_writer(settings_for(tmp_path, queue_bytes=3000, max_payload_bytes=1000))
    assert writer.offer(row(0))
    wait_until(lambda: writer.stats().queued == 0)

    def body(size: int) -> PayloadRow:
        return PayloadRow("request", T2, "r", b"x" * size, None, None, "/score", "POST")

    assert writer.offer(body(1500))  # counts as the 1000 bytes that will be written
    assert writer.offer(body(900))
    assert writer.offer(body(1000))
    assert not writer.offer(body(200))
    assert writer.stats().dropped == {("request", QUEUE_FULL): 1}
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # let the writer thread go, so close() is quick
    try:
        assert writer.flush(timeout=10)
    finally:
        os.close(reader)


def test_a_path_that_cannot_be_a_file_is_a_write_error(tmp_path: Path, make_writer: Any) -> None:
    (tmp_path / "model_inputs/2022/12/01/08" / f"host-{PID}.jsonl").mkdir(parents=True)
    writer = make_writer(settings_for(tmp_path))
    writer.offer(row(1))
    writer.offer(row(2, T2))
    writer.flush()
    assert writer.stats().dropped == {("model_inputs", "write_error"): 1}
    assert writer.stats().written == {"model_inputs": 1}


def test_a_group_past_one_write_is_cut_at_row_boundaries(tmp_path: Path, make_writer: Any) -> None:
    writer = make_writer(settings_for(tmp_path, max_payload_bytes=4 * 1024 * 1024))
    for i in range(4):
        writer.offer(ObjectRow("model_inputs", T1, f"r{i}", str(i) * (3 * 1024 * 1024)))
    writer.flush()
    rows = lines_of(tmp_path / "model_inputs/2022/12/01/08" / f"host-{PID}.jsonl")
    assert [(r["correlationid"], len(r["data"])) for r in rows] == [(f"r{i}", 3 * 1024 * 1024) for i in range(4)]
