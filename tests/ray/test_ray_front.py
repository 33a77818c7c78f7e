"""Where the replica's ASGI front answers (scorehost.ray.asgi): on its event loop while run() is quick, as a
bare Serve deployment does, under steady concurrent load too. In process: no cluster needed, but the front
needs the `ray` extra (a2wsgi)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from conftest import SCRIPTS

from scorehost.ray.replica import ScoringReplica

CLIENTS = 16
REQUESTS_EACH = 40


def test_a_quick_script_under_steady_load_is_answered_on_the_loop_after_its_warm_up() -> None:
    """Before the fix, the calls' measured time held their wait for the gate (16 requests behind one run() at a
    time), and a request went to the pool whenever one was there: under steady load every answer was made on the
    pool, each paying a thread hand-off that a bare deployment does not."""
    replica = ScoringReplica({"entry_script": str(SCRIPTS / "echo.py")})
    front = replica.asgi_app()
    where = {"loop": 0, "pool": 0}
    respond = front._respond_timed
    loop_thread: threading.Thread | None = None

    def counted(environ: Any, on_loop: bool) -> Any:
        where["loop" if threading.current_thread() is loop_thread else "pool"] += 1
        return respond(environ, on_loop)

    front._respond_timed = counted
    body = b'{"data": "ok"}'
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/score",
        "root_path": "",
        "query_string": b"",
        "http_version": "1.1",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
    }

    async def one() -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await front(dict(scope), receive, send)
        return int(sent[0]["status"])

    async def client() -> list[int]:
        return [await one() for _ in range(REQUESTS_EACH)]

    async def load() -> list[list[int]]:
        nonlocal loop_thread
        loop_thread = threading.current_thread()
        return await asyncio.gather(*(client() for _ in range(CLIENTS)))

    try:
        statuses = asyncio.run(load())
    finally:
        replica.scoring_app.close()
    assert {status for each in statuses for status in each} == {200}
    # The warm-up's calls (measured on the pool) and at most one round of requests that arrived meanwhile.
    assert where["pool"] <= 20 + CLIENTS, where
    assert where["loop"] + where["pool"] == CLIENTS * REQUESTS_EACH
