"""build_run_input: the text run(data) receives for a request, under each rule."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorehost.errors import BodyNotUTF8, InvalidJSON, RequestError, UnsupportedMediaType
from scorehost.host.inputs import (
    ScoreRequest,
    build_run_input,
    nested_too_deeply,
    query_to_json_text,
    typed_payload,
)
from scorehost.host.run_input import RunInputRule

BODY = RunInputRule.BODY
DATA = RunInputRule.DATA
ONLY_KEY = RunInputRule.DATA_IF_ONLY_KEY

JSON_TYPE = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=XyZ"


def post(body: bytes, content_type: str = JSON_TYPE) -> ScoreRequest:
    return ScoreRequest(method="POST", body=body, content_type=content_type)


def get(query: str = "") -> ScoreRequest:
    return ScoreRequest(method="GET", query=query)


# --- BODY: the reference server's raw text ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [[1, 2]]}',
        b'  {\n  "b": 1,\n  "a": "caf\\u00e9"\n}  \n',  # whitespace, key order and escapes untouched
        b"[1, 2, 3]",
        b"not json at all",
        '{"text": "café ☃"}'.encode(),
    ],
)
def test_body_is_the_raw_text_verbatim(body: bytes) -> None:
    assert build_run_input(BODY, post(body)) == body.decode("utf-8")


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/json; charset=latin-1"])
def test_body_ignores_the_content_type_and_charset(content_type: str) -> None:
    body = '{"name": "Zoë"}'.encode()
    assert build_run_input(BODY, post(body, content_type)) == '{"name": "Zoë"}'


@pytest.mark.parametrize(
    "content_type", [FORM, MULTIPART, "Application/X-WWW-Form-Urlencoded; charset=utf-8", "multipart/form-data"]
)
def test_body_of_a_form_is_empty_as_on_the_reference(content_type: str) -> None:
    assert build_run_input(BODY, post(b'{"data": [1]}', content_type)) == ""


def test_body_of_a_binary_form_is_empty_too() -> None:
    assert build_run_input(BODY, post(b"--XyZ\r\n\xff\xfe\x00binary\r\n--XyZ--", MULTIPART)) == ""


def test_body_not_utf8_is_a_400_with_pythons_message() -> None:
    with pytest.raises(BodyNotUTF8) as caught:
        build_run_input(BODY, post(b"\xff{}"))
    error = caught.value
    assert error.status_code == 400
    assert isinstance(error, RequestError)
    assert error.message.startswith(
        "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    )


def test_latin1_body_is_not_utf8() -> None:
    with pytest.raises(BodyNotUTF8):
        build_run_input(BODY, post('{"name": "Zoë"}'.encode("latin-1"), "application/json; charset=latin-1"))


def test_empty_body_is_empty_text() -> None:
    assert build_run_input(BODY, post(b"")) == ""


# --- DATA: the documented contract ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data": [[1, 2], [3, 4]]}', [[1, 2], [3, 4]]),
        (b'{"data": {"a": 1}, "other": 2}', {"a": 1}),  # other keys are allowed and dropped
        (b'{"data": "text"}', "text"),
        (b'{"data": null}', None),
        (b'{"data": 1.5e-7}', 1.5e-7),
        (b'  {"data" : [true, false]}  ', [True, False]),
    ],
)
def test_data_is_the_json_text_of_the_value(body: bytes, expected: object) -> None:
    text = build_run_input(DATA, post(body))
    assert json.loads(text) == expected


def test_data_ignores_a_form_content_type() -> None:
    """`curl -d '{"data": ...}'` labels JSON as a form; the value is still read."""
    assert json.loads(build_run_input(DATA, post(b'{"data": [1, 2]}', FORM))) == [1, 2]


def test_data_keeps_integers_beyond_64_bits() -> None:
    big = 2**70 + 1
    text = build_run_input(DATA, post(f'{{"data": [{big}, -{big}]}}'.encode()))
    assert json.loads(text) == [big, -big]


def test_data_keeps_nan_and_infinity() -> None:
    text = build_run_input(DATA, post(b'{"data": [NaN, Infinity, -Infinity, 1.0]}'))
    values = json.loads(text)
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 1.0]


def test_data_keeps_non_ascii_text() -> None:
    text = build_run_input(DATA, post('{"data": "café ☃ 日本"}'.encode()))
    assert json.loads(text) == "café ☃ 日本"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "The body is empty"),
        (b"  \n ", "The body is empty"),
        (b'{"data": [1, 2}', "The body is not valid JSON ("),
        (b"data=1", "The body is not valid JSON ("),
        (b"[[1, 2]]", "The body is a JSON array, not an object"),
        (b'"data"', "The body is a JSON string, not an object"),
        (b"3", "The body is a JSON number, not an object"),
        (b"null", "The body is a JSON null, not an object"),
        (b"true", "The body is a JSON boolean, not an object"),
        (b'{"input": [1], "rows": 2}', "The body has no \"data\" key (keys: 'input', 'rows')"),
        (b"{}", 'The body has no "data" key (keys: none)'),
    ],
)
def test_data_says_what_is_wrong_with_the_body(body: bytes, says: str) -> None:
    with pytest.raises(InvalidJSON) as caught:
        build_run_input(DATA, post(body))
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(says)
    assert caught.value.message.endswith('run_input=data expects a JSON object such as {"data": [[1, 2, 3]]}.')


def test_data_lists_at_most_five_keys() -> None:
    body = json.dumps({f"k{i}": i for i in range(8)}).encode()
    with pytest.raises(InvalidJSON, match=r"\(keys: 'k0', 'k1', 'k2', 'k3', 'k4'\)"):
        build_run_input(DATA, post(body))


def test_data_not_utf8() -> None:
    with pytest.raises(BodyNotUTF8):
        build_run_input(DATA, post(b'{"data": "\xff"}'))


# --- DATA_IF_ONLY_KEY: what auto gives a script that never reads "data" itself ---------------------------


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"data": [[1, 2], [3, 4]]}', [[1, 2], [3, 4]]),
        (b' \n{"data": {"x": [1.5]}}\n', {"x": [1.5]}),
        (b'{"data": "a string"}', "a string"),
        (b'{"data": null}', None),
        (b'{"data": []}', []),
    ],
)
def test_only_key_object_gives_the_value(body: bytes, value: object) -> None:
    assert json.loads(build_run_input(ONLY_KEY, post(body))) == value


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [1], "threshold": 0.5}',  # more keys: the script parses the whole body
        b'{"age": [31], "income": [5.5]}',  # a DataFrame
        b"[1.0, 2.0, 3.0]",  # a bare row
        b"[[1, 2], [3, 4]]",
        b'  {"data": [1}',  # not valid JSON: passed on for the script to judge
        b"{}",
        b"hello",
        b"",
    ],
)
def test_anything_else_goes_through_raw(body: bytes) -> None:
    assert build_run_input(ONLY_KEY, post(body)) == body.decode()


def test_only_key_with_a_form_content_type_still_gives_the_value() -> None:
    """`curl -d '{"data": [[1, 2]]}'` sends application/x-www-form-urlencoded."""
    assert json.loads(build_run_input(ONLY_KEY, post(b'{"data": [[1, 2]]}', FORM))) == [[1, 2]]


def test_json_array_with_a_form_content_type_goes_through_raw() -> None:
    assert build_run_input(ONLY_KEY, post(b"[[1, 2]]", FORM)) == "[[1, 2]]"


def test_real_form_body_is_empty_as_on_the_reference() -> None:
    assert build_run_input(ONLY_KEY, post(b"a=1&b=2", FORM)) == ""


def test_binary_multipart_upload_is_empty_as_on_the_reference() -> None:
    assert build_run_input(ONLY_KEY, post(b"--XyZ\r\n\xff\xd8\xff\xe0 jpeg\r\n--XyZ--", MULTIPART)) == ""


def test_only_key_not_utf8_is_a_400() -> None:
    with pytest.raises(BodyNotUTF8):
        build_run_input(ONLY_KEY, post(b'{"data": [1]}\xff'))


def test_only_key_keeps_big_integers_and_nan() -> None:
    big = 2**80
    text = build_run_input(ONLY_KEY, post(f'{{"data": [{big}, NaN]}}'.encode()))
    values = json.loads(text)
    assert values[0] == big
    assert math.isnan(values[1])


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )


def canonical(value: object) -> str:
    """Stdlib JSON text: equal for equal values, NaN included (NaN != NaN, but "NaN" == "NaN")."""
    return json.dumps(value)


@given(json_values())
def test_property_only_key_gives_back_the_value(value: object) -> None:
    body = json.dumps({"data": value}).encode()
    text = build_run_input(ONLY_KEY, post(body))
    assert canonical(json.loads(text)) == canonical(value)


@given(json_values())
def test_property_data_gives_back_the_value(value: object) -> None:
    body = json.dumps({"data": value, "extra": 1}).encode()
    assert canonical(json.loads(build_run_input(DATA, post(body)))) == canonical(value)


@given(st.binary(max_size=64))
def test_property_body_is_the_decoded_bytes_or_a_400(body: bytes) -> None:
    try:
        expected = body.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(BodyNotUTF8):
            build_run_input(BODY, post(body))
    else:
        assert build_run_input(BODY, post(body)) == expected


# --- GET: the query string as JSON text -------------------------------------------------------------------


def test_get_query_is_the_references_json_text() -> None:
    query = "echo=1&a=1&a=2&b=x&c=null&d=[1,2]"
    expected = '{"echo": 1, "a": [1, 2], "b": "x", "c": null, "d": [1, 2]}'
    assert query_to_json_text(query) == expected
    assert build_run_input(BODY, get(query)) == expected
    assert build_run_input(ONLY_KEY, get(query)) == expected


@pytest.mark.parametrize("rule", [BODY, ONLY_KEY])
def test_get_without_a_query_is_an_empty_object(rule: RunInputRule) -> None:
    assert build_run_input(rule, get("")) == "{}"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name=caf%C3%A9+au+lait", '{"name": "caf\\u00e9 au lait"}'),  # decoded, + is a space
        ("flag", '{"flag": ""}'),  # blank values are kept
        ("x=%7B%22k%22%3A+1%7D", '{"x": {"k": 1}}'),  # JSON values are parsed
        ("x=true&y=1.5&z=%22quoted%22", '{"x": true, "y": 1.5, "z": "quoted"}'),
        ("data=[[1,2]]&data=[[3,4]]", '{"data": [[[1, 2]], [[3, 4]]]}'),
        ("b=2&a=1", '{"b": 2, "a": 1}'),  # query order
    ],
)
def test_query_values(query: str, expected: str) -> None:
    assert query_to_json_text(query) == expected


def test_get_with_only_data_under_auto_gives_the_value() -> None:
    assert json.loads(build_run_input(ONLY_KEY, get("data=[[1,2],[3,4]]"))) == [[1, 2], [3, 4]]


def test_get_under_body_keeps_the_whole_object() -> None:
    assert build_run_input(BODY, get("data=[[1,2]]")) == '{"data": [[1, 2]]}'


def test_get_under_data_gives_the_value_and_drops_other_keys() -> None:
    assert json.loads(build_run_input(DATA, get("data=[[1,2]]&threshold=0.5"))) == [[1, 2]]


def test_get_under_data_without_data_is_a_400() -> None:
    with pytest.raises(InvalidJSON, match=r'GET /score needs a "data" query parameter under run_input=data'):
        build_run_input(DATA, get("rows=1"))


def test_get_query_keeps_nan() -> None:
    assert math.isnan(json.loads(build_run_input(DATA, get("data=NaN"))))


def test_get_ignores_the_body() -> None:
    request = ScoreRequest(method="GET", body=b'{"data": 1}', query="", content_type=JSON_TYPE)
    assert build_run_input(ONLY_KEY, request) == "{}"


@pytest.mark.parametrize("rule", [DATA, ONLY_KEY])
def test_deeply_nested_value_survives(rule: RunInputRule) -> None:
    """orjson reads 300 levels but writes only 254; the value must still come through."""
    nested = "[" * 300 + "]" * 300
    assert build_run_input(rule, post(f'{{"data": {nested}}}'.encode())) == nested


def test_get_query_keeps_big_integers_and_infinity() -> None:
    big = 2**70
    assert json.loads(build_run_input(ONLY_KEY, get(f"data=[{big},Infinity]"))) == [big, math.inf]


# --- typed run(): the JSON object whose keys are run()'s parameters -----------------------------------

PARAMETERS = ("data", "threshold")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/vnd.custom+json", "APPLICATION/JSON"],
)
def test_typed_payload_is_the_json_object(content_type: str) -> None:
    body = b'{"data": [[1, 2]], "threshold": 0.5, "extra": true}'
    assert typed_payload(post(body, content_type), PARAMETERS) == {"data": [[1, 2]], "threshold": 0.5, "extra": True}


@pytest.mark.parametrize("content_type", ["", "text/plain", FORM, MULTIPART, "application/jsonp"])
def test_typed_payload_needs_a_json_content_type(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        typed_payload(post(b'{"data": 1}', content_type), PARAMETERS)
    assert caught.value.status_code == 415
    assert caught.value.message.startswith("Expects Content-Type to be application/json")
    assert '{"data": ..., "threshold": ...}' in caught.value.message


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b"", "POST body is empty. Expecting a JSON dictionary"),
        (b"  \n", "POST body is empty. Expecting a JSON dictionary"),
        (b'{"data": ', "POST body could not be decoded as JSON: "),
        (b"[1, 2]", 'POST body should be a JSON dictionary such as {"data": ..., "threshold": ...}, not a JSON array'),
        (b'"text"', "POST body should be a JSON dictionary such as"),
    ],
)
def test_typed_payload_rejects_bodies_that_are_not_a_json_object(body: bytes, start: str) -> None:
    with pytest.raises(InvalidJSON) as caught:
        typed_payload(post(body), PARAMETERS)
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(start)


def test_typed_payload_refuses_a_body_that_is_not_utf8() -> None:
    with pytest.raises(BodyNotUTF8):
        typed_payload(post(b'{"data": "\xff"}'), PARAMETERS)


def test_typed_payload_keeps_big_integers_exact() -> None:
    payload = typed_payload(post(b'{"data": 123456789012345678901234567890}'), PARAMETERS)
    assert payload == {"data": 123456789012345678901234567890}


def test_typed_payload_of_a_get_is_the_query() -> None:
    payload = typed_payload(get("data=[[5.0,3.4]]&threshold=0.7&name=x"), PARAMETERS)
    assert payload == {"data": [[5.0, 3.4]], "threshold": 0.7, "name": "x"}
    assert typed_payload(get(""), PARAMETERS) == {}


# --- JSON nested past what Python reads ---------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("rule", [DATA, ONLY_KEY])
def test_a_body_nested_too_deeply_is_the_clients_error(rule: RunInputRule) -> None:
    with pytest.raises(InvalidJSON, match="nested too deeply"):
        build_run_input(rule, post(f'{{"data": {DEEP}}}'.encode()))


def test_a_data_value_nested_past_what_python_writes_is_the_clients_error() -> None:
    thousand = "[" * 1000 + "]" * 1000  # orjson reads it; the standard library cannot write it back
    with pytest.raises(InvalidJSON, match="nested too deeply"):
        build_run_input(DATA, post(f'{{"data": {thousand}}}'.encode()))


def test_a_deep_typed_body_is_the_clients_error() -> None:
    with pytest.raises(InvalidJSON, match="nested too deeply"):
        typed_payload(post(f'{{"data": {DEEP}}}'.encode()), ("data",))


@pytest.mark.parametrize("rule", [DATA, BODY, ONLY_KEY])
def test_a_deep_query_value_is_the_clients_error(rule: RunInputRule) -> None:
    with pytest.raises(InvalidJSON, match="The query parameter 'data' is JSON nested too deeply"):
        build_run_input(rule, get("data=" + DEEP))


# --- a run() that parses the body itself (--run-input body) and hits a RecursionError ---------------------


def test_nesting_past_half_the_recursion_limit_is_named() -> None:
    error = nested_too_deeply("[" * 501 + "]" * 501)
    assert isinstance(error, InvalidJSON)
    assert str(error).startswith("The body is JSON nested more than 500 levels deep")


@pytest.mark.parametrize(
    "text",
    ["[" * 500 + "]" * 500, '["' + "[" * 1000 + '"]', '{"a\\"[[": ' + "[" * 400 + "]" * 400 + "}", "not json ]]]"],
    ids=["at-the-limit", "brackets-in-a-string", "escaped-quote", "not-json"],
)
def test_shallower_text_is_not_blamed(text: str) -> None:
    assert nested_too_deeply(text) is None
