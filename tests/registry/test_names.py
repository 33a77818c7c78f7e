"""Model names, aliases and references: what is accepted, and the message for what is not."""

from __future__ import annotations

import pytest

from scorehost.errors import InvalidModelReference
from scorehost.registry.names import ModelRef, check_alias, check_name, parse_ref, parse_version


@pytest.mark.parametrize("name", ["sklearn_mnist", "a", "A-1.2_b", "9lives", "x" * 255])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "..", ".hidden", "../etc", "a/b", "a\\b", "/abs", "-dash", "_under", "sp ace", "x" * 256, "é", "a:b"]
)
def test_names_that_could_escape_or_confuse_are_refused(name: str) -> None:
    with pytest.raises(InvalidModelReference, match="not a valid model name: use letters, digits"):
        check_name(name)


def test_aliases_cannot_be_numbers_or_latest() -> None:
    assert check_alias("production") == "production"
    with pytest.raises(InvalidModelReference, match="a number means a version"):
        check_alias("3")
    with pytest.raises(InvalidModelReference, match="'latest' always means the highest version"):
        check_alias("latest")
    with pytest.raises(InvalidModelReference, match="not a valid alias"):
        check_alias("../prod")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m", ModelRef("m")),
        ("m:latest", ModelRef("m")),
        ("m:3", ModelRef("m", version=3)),
        ("m:production", ModelRef("m", alias="production")),
        (" m:2 ", ModelRef("m", version=2)),
    ],
)
def test_parse_ref(text: str, expected: ModelRef) -> None:
    assert parse_ref(text) == expected
    assert parse_ref(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("m:", "ends with ':'"), ("m:0", "versions are whole numbers"), ("../m:1", "not a valid model name")],
)
def test_parse_ref_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidModelReference, match=message):
        parse_ref(text)


def test_parse_version() -> None:
    assert parse_version("7") == 7
    assert parse_version(7) == 7
    for bad in ("0", "-1", "1.5", "one"):
        with pytest.raises(InvalidModelReference):
            parse_version(bad)
