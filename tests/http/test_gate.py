"""RunGate: user code runs on the caller's thread, a slot at a time, under a deadline a watchdog enforces."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from scorehost.errors import ScoringTimeout, ServiceUnavailable
from scorehost.http.gate import RunGate
from scorehost.telemetry.logs import request_id_var

MakeGate = Callable[..., RunGate]
FAR = 30.0  # a deadline no test reaches


@pytest.fixture
def make_gate() -> Iterator[MakeGate]:
    """`make_gate(slots, stuck_grace=..., on_stuck=...)`; the gates are closed after the test."""
    gates: list[RunGate] = []

    def _make(slots: int = 1, *, stuck_grace: float = 30.0, on_stuck: Callable[[str], None] | None = None) -> RunGate:
        gate = RunGate(slots, stuck_grace=stuck_grace, on_stuck=on_stuck or (lambda reason: None))
        gates.append(gate)
        return gate

    yield _make
    for gate in gates:
        gate.close("the test is over")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def run(gate: RunGate, function: Callable[..., object], *args: object, timeout: float = FAR, rid: str = "") -> object:
    """`gate.run(function, *args)` with a deadline `timeout` seconds from now."""
    now = time.monotonic()
    return gate.run(function, *args, deadline=now + timeout, started=now, request_id=rid)


def busy(seconds: float) -> str:
    """Work in Python for `seconds`, in 10 ms steps the watchdog's TimeoutError can land between."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
    return "done"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


class Holders:
    """Calls that sit inside the gate until released, to keep its slots taken."""

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def hold(self) -> str:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            assert self.release.wait(10), "never released"
        finally:
            with self._lock:
                self.inside -= 1
        return "held"


# --- running ---------------------------------------------------------------------------------------------


def test_runs_on_the_calling_thread_and_returns_the_result(make_gate: MakeGate) -> None:
    gate = make_gate()
    seen: list[tuple[int, str]] = []

    def function(a: int, b: int) -> int:
        seen.append((threading.get_ident(), request_id_var.get()))
        return a + b

    assert run(gate, function, 2, 3, rid="req-1") == 5
    assert seen == [(threading.get_ident(), "req-1")]
    assert request_id_var.get() == ""  # the request id is only set while the function runs


def test_exceptions_from_the_function_pass_through(make_gate: MakeGate) -> None:
    gate = make_gate()

    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run(gate, fails)
    assert run(gate, lambda: "next") == "next"  # the slot was released


@pytest.mark.parametrize("slots", [1, 3])
def test_n_slots_allow_n_concurrent_calls(make_gate: MakeGate, pool: ThreadPoolExecutor, slots: int) -> None:
    gate = make_gate(slots)
    holders = Holders()
    futures = [pool.submit(run, gate, holders.hold) for _ in range(slots)]
    wait_until(lambda: holders.inside == slots)
    # One more is kept out while every slot is taken.
    extra: Future[object] = pool.submit(run, gate, holders.hold)
    assert not _settles(extra, 0.1)
    assert holders.inside == slots
    holders.release.set()
    assert [future.result(timeout=5) for future in [*futures, extra]] == ["held"] * (slots + 1)
    assert holders.peak == slots


def test_waiting_past_the_deadline_is_a_timeout_and_never_runs(make_gate: MakeGate, pool: ThreadPoolExecutor) -> None:
    gate = make_gate()
    holders = Holders()
    holding = pool.submit(run, gate, holders.hold)
    wait_until(lambda: holders.inside == 1)
    called: list[str] = []
    started = time.monotonic()
    with pytest.raises(ScoringTimeout, match=r"^The request waited 150 ms behind other requests and was not run"):
        gate.run(called.append, "ran", deadline=started + 0.15, started=started)
    assert 0.15 <= time.monotonic() - started < 0.5
    assert called == []
    holders.release.set()
    assert holding.result(timeout=5) == "held"
    assert run(gate, lambda: "free") == "free"


def test_acquire_all_blocks_callers_until_release_all(make_gate: MakeGate, pool: ThreadPoolExecutor) -> None:
    gate = make_gate(2)
    gate.acquire_all()
    ran = threading.Event()
    futures = [pool.submit(run, gate, ran.set) for _ in range(2)]
    assert not ran.wait(0.15)
    gate.release_all()
    for future in futures:
        future.result(timeout=5)
    assert ran.is_set()
    assert run(gate, lambda: "after") == "after"


def test_a_closed_gate_refuses_new_and_waiting_calls(make_gate: MakeGate, pool: ThreadPoolExecutor) -> None:
    gate = make_gate()
    holders = Holders()
    holding = pool.submit(run, gate, holders.hold)
    wait_until(lambda: holders.inside == 1)
    waiting = pool.submit(run, gate, lambda: "never")
    assert not _settles(waiting, 0.1)
    gate.close("going away")
    assert gate.closed
    with pytest.raises(ServiceUnavailable, match="^going away$"):
        waiting.result(timeout=5)
    with pytest.raises(ServiceUnavailable, match="^going away$"):
        run(gate, lambda: "never")
    holders.release.set()
    assert holding.result(timeout=5) == "held"  # a call already running finishes


# --- the deadline while running ------------------------------------------------------------------------


def test_busy_loop_past_the_deadline_is_interrupted(make_gate: MakeGate) -> None:
    gate = make_gate()
    started = time.monotonic()
    with pytest.raises(ScoringTimeout, match=r"^run\(\) did not finish within the 200 ms scoring timeout"):
        gate.run(busy, 10.0, deadline=started + 0.2, started=started)
    late = time.monotonic() - (started + 0.2)
    assert 0 <= late < 0.5
    # The slot is free, and no timeout is left pending to hit the next call, which outlasts a watchdog tick.
    for _ in range(3):
        assert run(gate, busy, 0.15) == "done"


def test_the_timeout_is_raised_inside_the_function(make_gate: MakeGate) -> None:
    """User code sees a TimeoutError where it was, and its `finally` blocks run."""
    gate = make_gate()
    caught: list[BaseException] = []

    def function() -> str:
        try:
            return busy(10.0)
        except BaseException as exc:
            caught.append(exc)
            raise

    with pytest.raises(ScoringTimeout):
        run(gate, function, timeout=0.1)
    (exc,) = caught
    assert isinstance(exc, TimeoutError)


def test_swallowing_the_timeout_still_times_out(make_gate: MakeGate) -> None:
    gate = make_gate()
    returned: list[str] = []

    def function() -> str:
        try:
            busy(10.0)
        except TimeoutError:
            returned.append("swallowed")
        return "normal return"

    with pytest.raises(ScoringTimeout, match=r"^run\(\) did not finish within the 100 ms"):
        run(gate, function, timeout=0.1)
    assert returned == ["swallowed"]
    assert run(gate, busy, 0.15) == "done"


def test_timeout_wrapped_by_the_caller_is_still_a_timeout(make_gate: MakeGate) -> None:
    """EntryScript.call wraps whatever run() raises (`raise RunFailed(...) from exc`)."""
    gate = make_gate()

    def wrapped() -> str:
        try:
            return busy(10.0)
        except BaseException as exc:
            raise RuntimeError("wrapped") from exc

    with pytest.raises(ScoringTimeout):
        run(gate, wrapped, timeout=0.1)


def test_a_call_that_finishes_in_time_is_not_interrupted(make_gate: MakeGate) -> None:
    gate = make_gate()
    for _ in range(5):
        assert run(gate, busy, 0.06, timeout=0.3) == "done"


def test_each_of_several_slots_gets_its_own_deadline(make_gate: MakeGate, pool: ThreadPoolExecutor) -> None:
    gate = make_gate(2)
    slow = pool.submit(run, gate, busy, 10.0, timeout=0.15)
    quick = pool.submit(run, gate, busy, 0.3, timeout=5)
    with pytest.raises(ScoringTimeout):
        slow.result(timeout=5)
    assert quick.result(timeout=5) == "done"


# --- stuck calls ------------------------------------------------------------------------------------------


def test_call_blocked_in_c_past_the_grace_closes_the_gate(make_gate: MakeGate, pool: ThreadPoolExecutor) -> None:
    reasons: list[str] = []
    reported = threading.Event()

    def on_stuck(reason: str) -> None:
        reasons.append(reason)
        reported.set()

    gate = make_gate(2, stuck_grace=0.2, on_stuck=on_stuck)
    unblock = threading.Event()
    started = time.monotonic()
    stuck = pool.submit(run, gate, unblock.wait, timeout=0.1, rid="req-stuck")  # Event.wait blocks in C
    try:
        assert reported.wait(5)
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 1.0  # deadline + grace, give or take a watchdog tick
        (reason,) = reasons
        assert "run() for request req-stuck is still running" in reason
        assert "past its deadline and a 0.2 s grace period" in reason
        assert gate.closed
        assert not stuck.done()
        # The other slot is free, but the gate takes no more calls.
        with pytest.raises(ServiceUnavailable, match="being replaced"):
            run(gate, lambda: "never")
    finally:
        unblock.set()
    # Once unblocked, the stuck call ends with the timeout that was waiting for it.
    with pytest.raises(ScoringTimeout):
        stuck.result(timeout=5)
    assert reasons == [reason]  # reported once


def test_a_call_past_its_deadline_within_the_grace_is_not_stuck(make_gate: MakeGate) -> None:
    stuck: list[str] = []
    gate = make_gate(stuck_grace=2.0, on_stuck=stuck.append)
    with pytest.raises(ScoringTimeout):
        run(gate, time.sleep, 0.3, timeout=0.1)  # a sleep in C: interrupted only once it returns
    assert not gate.closed
    assert stuck == []
    assert run(gate, lambda: "ok") == "ok"


def _settles(future: Future[object], within: float) -> bool:
    try:
        future.exception(timeout=within)
    except TimeoutError:
        return False
    return True
