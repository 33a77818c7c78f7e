"""Data collection through a real `scorehost serve`: what a script's collectors and the payload logging write, read
back from the files; sampling; and a full or hung disk, which must cost no request."""

from __future__ import annotations

import concurrent.futures
import os
import resource
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import SCRIPTS, Server, kill, served, start_server, wait_ready

from scorehost.collection.layout import file_name, partition
from scorehost.collection.reader import iter_lines

pytestmark = pytest.mark.timeout(120)


def rows(directory: Path, collection: str | None = None) -> list[dict[str, object]]:
    lines = iter_lines(directory, collections=[collection] if collection else None)
    return [orjson.loads(line) for line in lines]


def wait_rows(directory: Path, collection: str, count: int, timeout: float = 10) -> list[dict[str, object]]:
    """The collection's rows once there are `count` (the writer flushes a few times a second)."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        found = rows(directory, collection) if (directory / collection).exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{collection}: {len(found)} rows, not {count}")


@pytest.fixture(scope="module")
def collecting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("collected")
    args = ["--collect-dir", str(folder), "--collect-header", "x-client-id", "--collect-header", "authorization"]
    with served(SCRIPTS / "collects_data.py", *args, "--workers", "2") as server:
        yield server, folder


def test_inputs_outputs_request_and_response_join_by_the_request_id(collecting: tuple[Server, Path]) -> None:
    server, folder = collecting
    ids = [f"join-{n}" for n in range(12)]
    with server.client() as client:
        for n, request_id in enumerate(ids):
            body = {"data": {"a": [n, 1], "b": [2, 3]}}
            headers = {"x-request-id": request_id, "x-client-id": "shop-7", "authorization": "Bearer sekrit-token"}
            answer = client.post("/score", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"total": {"0": n + 2, "1": 4}}
    by_collection = {name: wait_rows(folder, name, len(ids)) for name in ("model_inputs", "model_outputs")}
    by_collection.update({name: wait_rows(folder, name, len(ids)) for name in ("request", "response")})
    for name, found in by_collection.items():
        mine = {row["correlationid"]: row for row in found if str(row["correlationid"]).startswith("join-")}
        assert sorted(mine) == sorted(ids), name
        for n, request_id in enumerate(ids):
            row = mine[request_id]
            assert row["type"] == f"azureml.inference.{name}"
            assert row["xrequestid"] == request_id
            assert row["modelversion"] == "default"
            assert row["source"] == f"/serve/{socket.gethostname()}"
            expected = {
                "model_inputs": [{"a": n, "b": 2}, {"a": 1, "b": 3}],
                "model_outputs": [{"total": n + 2}, {"total": 4}],
                "request": {"data": {"a": [n, 1], "b": [2, 3]}},
                "response": {"total": {"0": n + 2, "1": 4}},
            }[name]
            assert row["data"] == expected, (name, row)
    request_row = next(row for row in by_collection["request"] if row["correlationid"] == "join-0")
    assert request_row["headers"] == {"x-client-id": "shop-7"}
    assert request_row["method"] == "POST"
    assert request_row["path"] == "/score"
    assert by_collection["model_inputs"][0]["collectdatatype"] == "pandas.core.frame.DataFrame"
    # Credentials never reach the files, whatever the settings ask; start-up said so.
    for path in folder.rglob("*.jsonl"):
        assert b"sekrit" not in path.read_bytes()
    assert "authorization never collected" in server.log


def test_a_row_that_is_not_json_is_kept_as_base64_with_its_content_type(collecting: tuple[Server, Path]) -> None:
    server, folder = collecting
    with server.client() as client:
        answer = client.post(
            "/score", content=b"\xff\x00 not json", headers={"content-type": "image/png", "x-request-id": "binary-1"}
        )
    assert answer.status_code in (400, 500)  # the script cannot parse it; collection still logs what came
    found = [row for row in wait_rows(folder, "request", 1) if row["correlationid"] == "binary-1"]
    deadline = time.monotonic() + 5
    while not found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = [row for row in rows(folder, "request") if row["correlationid"] == "binary-1"]
    assert found
    assert found[0]["datacontenttype"] == "image/png"
    assert found[0]["dataencoding"] == "base64"


def test_sampling_a_quarter_of_400_requests_keeps_whole_requests(tmp_path: Path) -> None:
    args = ["--collect-dir", str(tmp_path), "--collect-sampling-rate", "0.25", "--threads", "4"]
    with served(SCRIPTS / "echo.py", *args) as server, server.client() as client:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda n: client.post("/score", json={"data": n}).status_code, range(400)))
        assert statuses == [200] * 400
        time.sleep(1.5)  # past the writer's next flush
    requests = {row["correlationid"] for row in rows(tmp_path, "request")}
    responses = {row["correlationid"] for row in rows(tmp_path, "response")}
    # 100 expected; the binomial's standard deviation is 8.7: 55..145 is more than five of them either side.
    assert 55 <= len(requests) <= 145
    assert requests == responses  # one draw per request: a sampled request has all its rows


def _file_size_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_fails_no_request_and_leaves_whole_rows(tmp_path: Path) -> None:
    """Past RLIMIT_FSIZE every write fails as on a full disk (EFBIG; Python ignores SIGXFSZ)."""
    folder = tmp_path / "collected"
    args = [
        str(SCRIPTS / "echo.py"),
        "--collect-dir",
        str(folder),
        "--collect",
        "request",
        "--collect-max-payload",
        "1MiB",
    ]
    server = start_server(args, preexec_fn=lambda: _file_size_limit(3 * 1024 * 1024))
    try:
        wait_ready(server)
        payload = {"data": "x" * 300_000}
        with server.client() as client:
            for _ in range(30):  # 9 MB in all: most of it does not fit
                assert client.post("/score", json=payload).status_code == 200
        metrics = ""
        deadline = time.monotonic() + 10
        while 'reason="disk_full"' not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'scorehost_collection_dropped_rows_total{collection="request",reason="disk_full"}' in metrics
        assert 'scorehost_collected_rows_total{collection="request"}' in metrics
        written = rows(folder, "request")
        assert 1 <= len(written) < 30
        for path in folder.rglob("*.jsonl"):
            data = path.read_bytes()
            assert data.endswith(b"\n")  # the failed write was taken back: no half row
            assert all(orjson.loads(line)["data"] == payload for line in data.splitlines())
        server.wait_for_log("dropped")
    finally:
        kill(server)


def _workers(server: Server) -> list[int]:
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_a_hung_disk_fails_no_request(tmp_path: Path) -> None:
    """The writer's file is a FIFO nobody reads: opening it blocks, as on a hung network disk."""
    folder = tmp_path / "collected"
    args = ["--collect-dir", str(folder), "--collect", "request", "--threads", "4"]
    with served(SCRIPTS / "echo.py", *args) as server:
        (worker,) = _workers(server)
        fifos = []
        now = int(time.time())
        for moment in (now, now + 3600):  # this hour and the next: the test may straddle the hour
            where = folder / "request" / partition(moment, "Hour")
            where.mkdir(parents=True, exist_ok=True)
            fifo = where / file_name(pid=worker)
            os.mkfifo(fifo)
            fifos.append(fifo)
        with server.client() as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
            began = time.monotonic()
            statuses = list(pool.map(lambda n: client.post("/score", json={"data": n}).status_code, range(200)))
            took = time.monotonic() - began
        assert statuses == [200] * 200
        assert took < 20  # not held up by the writer (normally well under a second)
        assert stat.S_ISFIFO(fifos[0].stat().st_mode)
        # The disk comes back: the writer's open() returns and the queued rows arrive.
        reader = os.open(fifos[0], os.O_RDONLY | os.O_NONBLOCK)
        try:
            received = b""
            deadline = time.monotonic() + 10
            while received.count(b"\n") < 200 and time.monotonic() < deadline:
                try:
                    received += os.read(reader, 1 << 20)
                except BlockingIOError:
                    time.sleep(0.05)
        finally:
            os.close(reader)
        assert received.count(b"\n") >= 200
        assert all(orjson.loads(line)["type"] == "azureml.inference.request" for line in received.splitlines())
