"""FifoSlots: permits go to waiters in the order they arrived, never to a thread that barges in."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from scorehost.http.slots import FifoSlots


def wait_for_waiters(slots: FifoSlots, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(slots._waiters) < count:
        assert time.monotonic() < deadline, "waiters did not queue"
        time.sleep(0.002)


def test_free_permits_are_taken_at_once() -> None:
    slots = FifoSlots(2)
    assert slots.acquire(timeout=0)
    assert slots.acquire(timeout=0)
    assert not slots.acquire(timeout=0)
    slots.release()
    assert slots.acquire(timeout=0)


def test_waiters_are_served_in_arrival_order() -> None:
    slots = FifoSlots(1)
    assert slots.acquire()
    order: list[int] = []
    lock = threading.Lock()

    def wait(number: int) -> None:
        assert slots.acquire(timeout=10)
        with lock:
            order.append(number)
        slots.release()

    with ThreadPoolExecutor(5) as pool:
        futures = []
        for number in range(5):
            futures.append(pool.submit(wait, number))
            wait_for_waiters(slots, number + 1)  # queued one after the other
        slots.release()
        for future in futures:
            future.result(timeout=10)
    assert order == [0, 1, 2, 3, 4]


def test_a_released_permit_goes_to_the_waiter_not_to_the_releaser() -> None:
    slots = FifoSlots(1)
    assert slots.acquire()
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(slots.acquire, 10)
        wait_for_waiters(slots, 1)
        slots.release()
        assert not slots.acquire(timeout=0)  # the permit was handed over, not left for the taking
        assert waiter.result(timeout=5) is True


def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    slots = FifoSlots(1)
    assert slots.acquire()
    started = time.monotonic()
    assert not slots.acquire(timeout=0.1)
    assert time.monotonic() - started >= 0.1
    assert len(slots._waiters) == 0
    slots.release()  # nobody waits, so the permit is free again
    assert slots.acquire(timeout=0)


def test_wake_all_sends_waiters_away_without_a_permit() -> None:
    slots = FifoSlots(1)
    assert slots.acquire()
    with ThreadPoolExecutor(3) as pool:
        waiters = [pool.submit(slots.acquire, 10) for _ in range(3)]
        wait_for_waiters(slots, 3)
        slots.wake_all()
        assert [waiter.result(timeout=5) for waiter in waiters] == [False, False, False]
    assert not slots.acquire(timeout=0)  # the permit held all along is still held
