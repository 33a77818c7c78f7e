"""Model names, aliases and references: what is accepted, and the message for what is not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorehost.errors import InvalidModelReference
from scorehost.registry.names import MAX_VERSION, ModelRef, check_alias, check_name, parse_ref, parse_version


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


@pytest.mark.parametrize("text", ["99999999999999999999999", str(MAX_VERSION + 1), "9" * 5000, "²", "١", "𝟙"])
def test_versions_past_the_column_or_not_ascii_are_refused_by_name(text: str) -> None:
    with pytest.raises(
        InvalidModelReference, match=f"is not a version: versions are whole numbers from 1 to {MAX_VERSION}"
    ):
        parse_version(text)
    assert parse_version(f"000{MAX_VERSION}") == MAX_VERSION


@pytest.mark.parametrize("selector", ["99999999999999999999999", "²", "١"])
def test_a_reference_to_a_version_no_column_holds_is_refused(selector: str) -> None:
    with pytest.raises(InvalidModelReference, match="not a version|not a valid alias"):
        parse_ref(f"m:{selector}")


_REF_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}:{}".format,
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True),
        st.one_of(st.text(max_size=30), st.integers(min_value=-(10**30), max_value=10**30).map(str)),
    ),
)


@settings(max_examples=300, deadline=None)
@given(_REF_TEXT)
def test_any_reference_text_parses_or_is_refused_by_name(text: str) -> None:
    try:
        parsed = parse_ref(text)
    except InvalidModelReference:
        return
    assert parsed.version is None or 1 <= parsed.version <= MAX_VERSION
    assert parse_ref(str(parsed)) == parsed
