"""Adaptive batching over real sockets: concurrent requests share run_batch() calls, a lone one does not wait,
each request keeps its own answer (one bad input fails only itself), and queued requests keep their deadline."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import Server

from scorehost.http.pipeline import RUN_FAILED_MESSAGE

Serve = Callable[..., Server]


def _behind_a_blocker(server: Server, bodies: list[object], sleep: float = 0.4) -> list[httpx.Response]:
    """Post `bodies` at once while a first request holds the worker for `sleep` seconds: they queue together."""
    with server.client() as client, ThreadPoolExecutor(len(bodies) + 1) as pool:
        blocker = pool.submit(client.post, "/score", json={"data": {"sleep": sleep}})
        time.sleep(sleep / 2)
        replies = list(pool.map(lambda data: client.post("/score", json={"data": data}), bodies))
        assert blocker.result().status_code == 200
    return replies


def test_concurrent_requests_share_calls_and_keep_their_own_answers(serve: Serve) -> None:
    server = serve("batch_echo.py")
    with server.client() as client:
        client.post("/score", json={"data": {"sleep": 0.5}})  # nothing else running: alone, at once
    # One slow call holds the worker while 12 more arrive: they run together after it.
    with server.client() as client, ThreadPoolExecutor(13) as pool:
        first = pool.submit(client.post, "/score", json={"data": {"sleep": 0.5}})
        time.sleep(0.2)
        rest = list(pool.map(lambda n: client.post("/score", json={"data": n}), range(12)))
        assert first.result().json() == {"echo": {"sleep": 0.5}, "batch": 1}
    assert [reply.status_code for reply in rest] == [200] * 12
    assert [reply.json()["echo"] for reply in rest] == list(range(12))  # each its own answer, whatever the order
    sizes = [reply.json()["batch"] for reply in rest]
    assert max(sizes) >= 6, sizes  # they met in batches (up to 12 at once)
    assert all(reply.headers["x-ms-run-function-failed"] == "False" for reply in rest)


def test_a_lone_request_is_not_held_for_company(serve: Serve) -> None:
    server = serve("batch_echo.py", "--max-batch-wait-ms", "2000")
    with server.client() as client:
        began = time.monotonic()
        reply = client.post("/score", json={"data": 1})
        elapsed = time.monotonic() - began
    assert reply.json() == {"echo": 1, "batch": 1}  # run() itself, as without batching
    assert elapsed < 1.0  # the 2 s wait is only for requests already on their way


def test_one_bad_input_fails_only_its_own_request(serve: Serve) -> None:
    server = serve("batch_echo.py")
    with server.client() as client, ThreadPoolExecutor(9) as pool:
        blocker = pool.submit(client.post, "/score", json={"data": {"sleep": 0.5}})
        time.sleep(0.2)
        replies = list(pool.map(lambda data: client.post("/score", json={"data": data}), [1, 2, "bad", 4, 5, 6, 7, 8]))
        assert blocker.result().status_code == 200
    codes = [reply.status_code for reply in replies]
    assert codes == [200, 200, 500, 200, 200, 200, 200, 200]
    assert replies[2].headers["x-ms-run-function-failed"] == "True"
    assert replies[2].json() == {"message": RUN_FAILED_MESSAGE}  # what run() raised is in the log only
    server.wait_for_log(rf"\[{re.escape(replies[2].headers['x-request-id'])}\] run\(\) raised ValueError: a bad input$")
    assert [reply.json()["echo"] for index, reply in enumerate(replies) if index != 2] == [1, 2, 4, 5, 6, 7, 8]
    assert all(reply.json()["batch"] == 1 for index, reply in enumerate(replies) if index != 2)  # retried alone
    assert "run_batch() raised ValueError: a bad input in the batch; retrying its 8 requests one by one" in server.log


def test_a_request_whose_deadline_passes_while_queued_is_never_run(serve: Serve) -> None:
    server = serve("batch_echo.py", "--timeout", "1")
    with server.client() as client, ThreadPoolExecutor(4) as pool:
        blocker = pool.submit(client.post, "/score", json={"data": {"sleep": 1.5}})
        time.sleep(0.2)
        queued = list(pool.map(lambda n: client.post("/score", json={"data": f"late-{n}"}), range(3)))
        blocker.result()
        seen = client.post("/score", json={"data": "seen"}).json()
    assert [reply.status_code for reply in queued] == [504] * 3
    assert all("was not run" in reply.json()["message"] for reply in queued)
    assert not any(str(item).startswith("late-") for item in seen), seen  # never handed to run() or run_batch()


def test_batch_size_is_capped_and_batching_can_be_turned_off(serve: Serve) -> None:
    capped = serve("batch_echo.py", "--max-batch-size", "3")
    replies = _behind_a_blocker(capped, list(range(9)))
    assert max(reply.json()["batch"] for reply in replies) == 3
    off = serve("batch_echo.py", "--max-batch-size", "0")
    replies = _behind_a_blocker(off, list(range(5)))
    assert {reply.json()["batch"] for reply in replies} == {1}


def test_typed_scripts_batch_converted_inputs_within_their_declared_size(serve: Serve) -> None:
    server = serve("batch_typed.py")
    with server.client() as client, ThreadPoolExecutor(11) as pool:
        # The worker held 2 s: time for all ten to queue behind it even on a loaded machine.
        blocker = pool.submit(client.post, "/score", json={"data": [[-5.0, 0.0]]})
        time.sleep(0.2)
        replies = list(pool.map(lambda n: client.post("/score", json={"data": [[1.0, float(n)]]}), range(10)))
        assert blocker.result().json()["sums"] == [-5.0]
    assert [reply.status_code for reply in replies] == [200] * 10
    assert {reply.json()["type"] for reply in replies} == {"ndarray"}  # converted by the decorators' schema
    assert [reply.json()["sums"] for reply in replies] == [[1.0 + n] for n in range(10)]
    assert max(reply.json()["batch"] for reply in replies) == 4  # @scorehost.batch(max_batch_size=4)
    bad = httpx.post(server.url + "/score", json={"data": "not an array"}, timeout=30)
    assert bad.status_code == 400  # converted on the request's own thread: refused before any batch


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_start_up_log_says_batching_is_on(serve: Serve, workers: str) -> None:
    server = serve("batch_echo.py", "--workers", workers)
    server.wait_for_log(r"batching: up to 32 requests per run_batch\(\) call, waiting at most 2 ms")


def test_streamed_answers_of_a_batch_do_not_wait_for_each_others_readers(serve: Serve, tmp_path: Path) -> None:
    server = serve("batch_raw_streaming.py")
    gate = tmp_path / "gate"
    with server.client() as client, ThreadPoolExecutor(6) as pool:
        blocker = pool.submit(client.post, "/score?name=blocker&sleep=0.5", content=b"-")
        time.sleep(0.2)
        held = pool.submit(client.post, f"/score?name=held&gate={gate}", content=b"-")
        others = [pool.submit(client.post, f"/score?name=n{index}", content=b"-") for index in range(4)]
        texts = [future.result(timeout=15).text for future in others]  # while `held` still streams, unread
        assert not held.done()
        gate.touch()
        assert held.result(timeout=15).text.startswith("held first\nheld last, batch of ")
        assert blocker.result().text == "blocker first\nblocker last, batch of 1\n"
    sizes = []
    for index, text in enumerate(texts):
        first, last = text.splitlines()
        assert first == f"n{index} first"
        assert last.startswith(f"n{index} last, batch of ")
        sizes.append(int(last.rpartition(" ")[2]))
    assert max(sizes) >= 2, sizes  # they met in a batch, and each answer streamed on its own


def test_behind_a_quick_scripts_lone_requests_a_backlog_still_batches(serve: Serve) -> None:
    server = serve("batch_echo.py")
    with server.client() as client:  # quick calls, one at a time: each runs alone, as if unbatched
        assert [client.post("/score", json={"data": n}).json()["batch"] for n in range(20)] == [1] * 20
    # The worker's thread runs the blocker itself; the requests behind it wait for that thread, which then
    # finds them waiting (a backlog) and hands them to the batch thread.
    replies = _behind_a_blocker(server, list(range(12)), sleep=0.3)
    assert [reply.json()["echo"] for reply in replies] == list(range(12))
    assert max(reply.json()["batch"] for reply in replies) >= 2, [reply.json()["batch"] for reply in replies]


@pytest.mark.parametrize(
    ("mode", "blocker", "expected"),
    [
        ("data", {"data": {"sleep": 0.4}}, lambda n: n),  # run_batch gets each body's "data"
        ("body", {"sleep": 0.4}, lambda n: {"data": n}),  # ... or each whole body
        ("auto", {"data": {"sleep": 0.4}}, lambda n: n),  # {"data": ...} alone: its value
    ],
)
def test_every_run_input_mode_batches_what_run_would_get(
    serve: Serve, mode: str, blocker: object, expected: Callable[[int], object]
) -> None:
    server = serve("batch_echo.py", "--run-input", mode)
    with server.client() as client, ThreadPoolExecutor(9) as pool:
        first = pool.submit(client.post, "/score", json=blocker)
        time.sleep(0.2)
        replies = list(pool.map(lambda n: client.post("/score", json={"data": n}), range(8)))
        assert first.result().status_code == 200
    assert [reply.json()["echo"] for reply in replies] == [expected(n) for n in range(8)]
    assert max(reply.json()["batch"] for reply in replies) >= 2  # they met in batches
