"""The Ray backend's count of restarts (`ray_replicas`): replicas that died, told from those Serve stopped on purpose,
from successive looks at a generation's replica list. Pure logic: no Ray."""

from __future__ import annotations

from scorehost.deploy.backends.ray_replicas import Counted, Replica, ReplicaBook, replicas_of


def running(*ids: str) -> list[Replica]:
    return [Replica(name, "RUNNING", float(index)) for index, name in enumerate(ids)]


def test_a_replica_replaced_after_it_died_counts_one_restart_and_passes_it_on() -> None:
    book = ReplicaBook()
    assert book.look([], 1) == {}  # before Serve has started it: nothing to count
    assert book.look([Replica("a", "STARTING")], 1) == {"a": Counted()}
    assert book.look(running("a"), 1) == {"a": Counted()}
    assert book.look([], 1) == {}  # it died; its replacement is not listed yet
    assert book.restarts == 1
    [(name, counted)] = book.look([Replica("b", "STARTING")], 1).items()
    assert (name, counted.restarts) == ("b", 1)
    assert counted.last_error is not None
    assert counted.last_error.startswith("replaces replica a, which stopped")
    book.look(running("c"), 1)  # b died too: c carries both
    assert book.look(running("c"), 1)["c"].restarts == 2
    assert book.restarts == 2


def test_a_replica_seen_stopping_and_its_replacement_in_one_look() -> None:
    book = ReplicaBook()
    book.look(running("a", "b"), 2)
    seen = book.look([Replica("a", "STOPPING", 0.0), Replica("b", "RUNNING", 1.0), Replica("c", "STARTING", 2.0)], 2)
    assert {name: counted.restarts for name, counted in seen.items()} == {"a": 0, "b": 0, "c": 1}
    assert book.restarts == 1


def test_scaling_down_and_up_is_no_restart() -> None:
    book = ReplicaBook()
    book.look(running("a", "b", "c"), 3)
    book.look(running("a", "b", "c"), 1)  # the target dropped: Serve stops two of them soon
    book.look([*running("a"), Replica("b", "STOPPING", 1.0)], 1)
    book.look(running("a"), 1)
    book.look(running("a", "d"), 2)  # scaled up again
    assert book.restarts == 0


def test_restarts_of_a_replica_scaled_away_stay_in_the_total() -> None:
    book = ReplicaBook()
    book.look(running("a", "b"), 2)
    book.look(running("a"), 2)
    book.look(running("a", "c"), 2)  # c replaced b: 1 restart
    shown = book.look(running("a"), 1)  # then c is scaled away: its count moves to the oldest replica
    assert shown["a"].restarts == 1
    assert book.restarts == 1


def test_replicas_of_serves_details() -> None:
    class State:  # Serve's ReplicaState enum, as it arrives
        value = "RUNNING"

    deployment = {
        "replicas": [
            {"replica_id": "late", "state": "STARTING", "start_time_s": 20.0},
            {"replica_id": "early", "state": State(), "start_time_s": 10.0},
        ]
    }
    assert replicas_of(deployment) == [Replica("early", "RUNNING", 10.0), Replica("late", "STARTING", 20.0)]
    assert replicas_of({}) == []
