"""`scorehost serve --reload` with a real server: a saved change is answered within seconds, no request fails
while the workers are swapped, and a broken change leaves the previous version serving, the log saying why."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, kill, start_server, wait_ready

SCRIPT = """import os


def init():
    # As a script that trains its model on first use saves it: what init() writes starts no reload.
    with open(os.path.join(os.path.dirname(__file__), "model.pkl"), "wb") as model:
        model.write(os.urandom(8))
{init}


def run(data):
    return {{"answer": {answer!r}, "pid": os.getpid()}}
"""


def save(script: Path, answer: str, init: str = "    pass") -> None:
    script.write_text(SCRIPT.format(answer=answer, init=init))


class Load:
    """Clients sending requests in a loop, each on a new connection (so each is steered anew), until stopped."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url = url
        self.answers: list[list[tuple[int, str, int]]] = [[] for _ in range(clients)]  # per client, in order
        self.failures: list[str] = []
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(seen,)) for seen in self.answers]
        for thread in self.threads:
            thread.start()

    def _send(self, seen: list[tuple[int, str, int]]) -> None:
        while not self.stopped.is_set():
            try:
                response = httpx.post(f"{self.url}/score", json={"data": 1}, timeout=30)
            except httpx.HTTPError as error:
                self.failures.append(repr(error))
                continue
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} {response.text}")
                continue
            body = response.json()
            seen.append((response.status_code, body["answer"], body["pid"]))

    def wait_for(self, answer: str, timeout: float = 60) -> set[int]:
        """Wait until every client got `answer`; the pids that gave it."""
        deadline = time.monotonic() + timeout
        while not all(any(got == answer for _, got, _ in seen) for seen in self.answers):
            assert time.monotonic() < deadline, f"never answered {answer!r}: {self.failures[-3:]}"
            time.sleep(0.05)
        return {pid for seen in self.answers for _, got, pid in seen if got == answer}

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(60)


@pytest.fixture
def reloading(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Server, Path]]:
    script = tmp_path / "app" / "score.py"
    script.parent.mkdir()
    save(script, "v1")
    server = start_server([str(script), "--reload", "--workers", str(request.param)])
    try:
        yield wait_ready(server), script
    finally:
        kill(server)


def gone(pids: set[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = set()
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.add(pid)
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("reloading", [1, 2], indirect=True, ids=["1-worker", "2-workers"])
def test_a_change_is_served_without_a_failed_request_and_a_broken_one_keeps_the_old(
    reloading: tuple[Server, Path],
) -> None:
    server, script = reloading
    load = Load(server.url)
    try:
        first = load.wait_for("v1")
        save(script, "v2")
        second = load.wait_for("v2")
        server.wait_for_log(r"reloaded: \d new worker\(s\) serving")
        assert gone(first), f"the replaced workers {first} still run:\n{server.log}"

        # A change whose init() fails: the log says so, and the workers of v2 answer on.
        save(script, "v3", init='    raise RuntimeError("the model file is gone")')
        server.wait_for_log(r"reload failed: the changed script cannot be served; the previous version serves on")
        server.wait_for_log(r"RuntimeError: the model file is gone")
        count = sum(len(seen) for seen in load.answers)
        time.sleep(1)
        assert sum(len(seen) for seen in load.answers) > count  # still answering
        assert not gone(second, timeout=0)

        save(script, "v4")
        load.wait_for("v4")
    finally:
        load.stop()
    assert load.failures == []
    for seen in load.answers:
        answers = [answer for _, answer, _ in seen]
        # Once a client got the new version, new connections never reach the old one again.
        assert answers == sorted(answers), answers
        assert "v3" not in answers
    assert server.log.count("listening on") == 1
    assert server.log.count("changed; starting") == 3, server.log  # v2, v3, v4: none for model.pkl
