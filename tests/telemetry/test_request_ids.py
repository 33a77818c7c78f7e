"""Request ids: which the reply echoes and which the logs use (the reference's matrix, contract §8)."""

from __future__ import annotations

import uuid

import pytest

from scorehost.errors import RequestIdTooLong, ScorehostError
from scorehost.telemetry.request_ids import request_ids


def assert_new_uuid4(value: str) -> None:
    parsed = uuid.UUID(value)
    assert parsed.version == 4
    assert str(parsed) == value


def test_nothing_sent_gives_one_new_id_in_both_headers() -> None:
    request_id, headers = request_ids({})
    assert_new_uuid4(request_id)
    assert headers == [("x-request-id", request_id), ("x-ms-request-id", request_id)]


def test_each_request_gets_its_own_id() -> None:
    assert request_ids({})[0] != request_ids({})[0]


def test_x_request_id_is_echoed_in_both() -> None:
    request_id, headers = request_ids({"x-request-id": "A"})
    assert request_id == "A"
    assert headers == [("x-request-id", "A"), ("x-ms-request-id", "A")]


def test_client_request_id() -> None:
    request_id, headers = request_ids({"x-ms-client-request-id": "C"})
    assert_new_uuid4(request_id)
    assert headers == [("x-request-id", request_id), ("x-ms-request-id", "C"), ("x-ms-client-request-id", "C")]


def test_deprecated_ms_request_id() -> None:
    request_id, headers = request_ids({"x-ms-request-id": "B"})
    assert_new_uuid4(request_id)
    assert headers == [("x-request-id", request_id), ("x-ms-request-id", "B"), ("x-ms-client-request-id", "B")]


def test_all_three_are_each_echoed_in_their_own_header() -> None:
    request_id, headers = request_ids({"x-request-id": "A", "x-ms-request-id": "B", "x-ms-client-request-id": "C"})
    assert request_id == "A"
    assert headers == [("x-request-id", "A"), ("x-ms-request-id", "B"), ("x-ms-client-request-id", "C")]


def test_request_id_and_client_id() -> None:
    request_id, headers = request_ids({"x-request-id": "A", "x-ms-client-request-id": "C"})
    assert request_id == "A"
    assert headers == [("x-request-id", "A"), ("x-ms-request-id", "C"), ("x-ms-client-request-id", "C")]


def test_trace_id_is_echoed_as_trace_id() -> None:
    request_id, headers = request_ids({"x-request-id": "A", "traceid": "T-1"})
    assert headers == [("x-request-id", "A"), ("x-ms-request-id", "A"), ("TraceId", "T-1")]


def test_the_logs_use_x_request_id_not_the_client_id() -> None:
    request_id, _ = request_ids({"x-request-id": "A", "x-ms-client-request-id": "C"})
    assert request_id == "A"


@pytest.mark.parametrize("name", ["x-request-id", "x-ms-request-id", "x-ms-client-request-id"])
def test_exactly_100_characters_is_accepted(name: str) -> None:
    value = "i" * 100
    _, headers = request_ids({name: value})
    assert (name, value) in headers


def test_x_request_id_over_100_characters_is_a_431() -> None:
    with pytest.raises(RequestIdTooLong) as caught:
        request_ids({"x-request-id": "i" * 101})
    assert caught.value.status_code == 431
    assert caught.value.message == "x-request-id must not exceed 100 characters"
    assert isinstance(caught.value, ScorehostError)


@pytest.mark.parametrize("name", ["x-ms-request-id", "x-ms-client-request-id"])
def test_ms_ids_over_100_characters_are_a_431(name: str) -> None:
    with pytest.raises(RequestIdTooLong) as caught:
        request_ids({name: "i" * 101})
    assert caught.value.status_code == 431
    assert caught.value.message == "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"


def test_x_request_id_is_checked_first() -> None:
    with pytest.raises(RequestIdTooLong, match="^x-request-id must"):
        request_ids({"x-request-id": "i" * 101, "x-ms-request-id": "j" * 101})


def test_long_trace_id_is_not_limited() -> None:
    _, headers = request_ids({"traceid": "t" * 500})
    assert ("TraceId", "t" * 500) in headers


def test_new_request_ids_are_unique_uuid4_strings() -> None:
    import uuid

    from scorehost.telemetry.request_ids import new_request_id

    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:100]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


def test_a_forked_worker_takes_its_own_id_prefix() -> None:
    import os

    from scorehost.telemetry.request_ids import new_request_id

    parent = new_request_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its id and leave without running pytest's teardown
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    assert child[:23] != parent[:23]
