"""Where the replica's front answers (scorehost.ray.loop_trials): the loop is tried once the pool's times allow it,
and judged by the calls made there."""

from __future__ import annotations

from scorehost.ray.loop_trials import RETRY_S, ROUND, SLOW_CALL_S, TRY_MAX_S, WALL_MAX_S, LoopTrials

WARM_UP = 20
QUICK = 0.0004


def warmed(pool_seconds: float) -> LoopTrials:
    trials = LoopTrials(warm_up=WARM_UP)
    for _ in range(WARM_UP):
        assert not trials.wants_loop(0.0)
        trials.add_pool(pool_seconds)
    return trials


def on_the_loop(trials: LoopTrials, now: float, seconds: float, cpu_seconds: float, calls: int = ROUND) -> None:
    for _ in range(calls):
        assert trials.wants_loop(now)
        trials.add_loop(seconds, cpu_seconds, now)


def test_a_script_slow_on_the_pool_under_load_is_tried_on_the_loop_and_stays_there_when_quick() -> None:
    """The case that kept the benchmark on the pool: 0.4 ms calls that read 4 ms on a pool thread."""
    trials = warmed(0.004)
    on_the_loop(trials, 1.0, QUICK, QUICK)
    assert trials.on_loop
    assert trials.wants_loop(100.0)


def test_a_quick_script_preempted_on_a_busy_machine_stays_on_the_loop() -> None:
    """Measured on a busy two-core machine: half the calls under 1 ms, the others preempted, 2-7 ms of wall-clock
    time for the same CPU time."""
    trials = warmed(0.004)
    for call in range(10 * ROUND):
        assert trials.wants_loop(1.0)
        trials.add_loop(0.007 if call % 2 else 0.0008, 0.0007, 1.0)
    assert trials.on_loop


def test_a_script_that_computes_too_long_goes_back_to_the_pool_and_is_tried_again_later() -> None:
    trials = warmed(0.004)
    on_the_loop(trials, 1.0, 0.004, 0.004)
    assert not trials.on_loop
    assert not trials.wants_loop(1.0 + RETRY_S / 2)
    assert trials.wants_loop(1.0 + RETRY_S)  # a new round, judged afresh
    on_the_loop(trials, 1.0 + RETRY_S, QUICK, QUICK)
    assert trials.on_loop


def test_a_script_that_waits_rather_than_computes_is_not_kept_on_the_loop() -> None:
    """A model's own threads, or a remote call: little CPU time on the loop's thread, but the loop held."""
    trials = warmed(0.004)
    on_the_loop(trials, 1.0, WALL_MAX_S * 2, QUICK)
    assert not trials.on_loop


def test_one_call_too_slow_to_repeat_ends_the_round_at_once() -> None:
    trials = warmed(0.004)
    assert trials.wants_loop(1.0)
    trials.add_loop(SLOW_CALL_S, SLOW_CALL_S, 1.0)
    assert not trials.on_loop
    assert not trials.wants_loop(1.0)


def test_a_quick_script_that_turns_slow_leaves_the_loop_within_a_round() -> None:
    trials = warmed(QUICK)
    on_the_loop(trials, 1.0, QUICK, QUICK)
    for _ in range(ROUND // 2 + 1):
        trials.add_loop(0.004, 0.004, 2.0)
    assert not trials.wants_loop(2.0)
    assert not trials.wants_loop(2.0 + RETRY_S / 2)


def test_the_loop_is_never_tried_before_the_warm_up_nor_for_a_script_slow_on_the_pool() -> None:
    trials = LoopTrials(warm_up=WARM_UP)
    for _ in range(WARM_UP - 1):
        trials.add_pool(QUICK)
    assert not trials.wants_loop(0.0)
    slow = warmed(TRY_MAX_S * 2)
    assert not slow.wants_loop(1000.0)
