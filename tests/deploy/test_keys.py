"""Endpoint keys: random, compared in constant time against every slot, redacted in output."""

from __future__ import annotations

import pytest

from scorehost.deploy.keys import bearer_token, key_matches, new_key, redact


def test_new_keys_are_long_random_and_url_safe() -> None:
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert len(key) == 43
        assert key.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
        ("abc", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_key_matches_either_slot_and_nothing_else() -> None:
    primary, secondary = new_key(), new_key()
    assert key_matches(primary, [primary, secondary])
    assert key_matches(secondary, [primary, secondary])
    assert not key_matches(primary[:-1], [primary, secondary])
    assert not key_matches(primary + "x", [primary, secondary])
    assert not key_matches("", [primary, secondary])
    assert not key_matches(None, [primary, secondary])
    assert not key_matches("", [""])  # an empty key never opens anything
    assert not key_matches("\udcff", [primary])  # undecodable header bytes are just a wrong key
    assert not key_matches(primary, [])


def test_redact_shows_only_a_prefix() -> None:
    key = new_key()
    assert redact(key) == key[:4] + "…"
    assert key[4:] not in redact(key)
    assert redact("") == ""
