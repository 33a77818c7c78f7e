"""Schemathesis over the control plane's API, driven by its own OpenAPI document, with the token: no 5xx.

Each operation is fuzzed twice: with the names the schema makes up (mostly 404s), and on an endpoint and a
deployment that exist, so that the bodies reach the validation behind the lookup. Half of the deployment bodies
name a script and code folder that exist, so those reach the checks past the paths too. Besides schemathesis'
positive and negative cases, a third kind keeps a positive body but gives one of its fields (or a field inside
one) a value of any JSON type: where the negative cases mostly break the body as a whole, these reach each field's
own check (a mirror percent of "abc", an environment that is a list).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from _control_plane import TOKEN, api_server
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation

from fuzz._schemathesis import operations
from fuzz._tally import Recorder, fuzz_settings
from scorehost.deploy.controlplane.openapi import document

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The request bodies' fields, and the fields of the objects among them (OpenAPI document, components.schemas).
FIELDS = ["name", "auth", "description", "key", "traffic", "mirror", "script", "code_dir", "models", "instances"]
FIELDS += ["environment", "serve_options", "backend", "ray"]
INNER = ["deployment", "percent", "blue", "address", "min_replicas", "max_ongoing", "LOG_LEVEL", "workers", "port"]
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**30, -1, 0, 101, "abc", "", "\x00", "a\x00b", "\ud800", "workers=3"])
    | st.floats()  # NaN and the infinities too: the API reads JSON with Python's json, which takes them
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
ENDPOINT, DEPLOYMENT = "fuzzed", "blue"
# Operations that answer a 5xx today, with the request that shows it: xfail until fixed (then XPASS fails the run,
# and the marker goes).
KNOWN: dict[str, str] = {}


def _cases() -> list[object]:
    """(operation, names) for every operation: with made-up names, and with existing ones where its path has any."""
    cases: list[object] = []
    for operation in operations(document()):
        for names in ["made-up", "existing"] if len(operation.path_parameters) else ["made-up"]:
            known = KNOWN.get(operation.label)
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            cases.append(pytest.param(operation.label, names, marks=marks, id=f"{operation.label}-{names}"))
    return cases


class ControlPlane:
    """A real API server (tests/_control_plane.py) with one endpoint and one deployment always present."""

    def __init__(self, url: str, code: Path) -> None:
        self.url, self.code = url, code
        self.client = httpx.Client(base_url=url, headers=AUTH, timeout=30)

    def restore(self) -> None:
        """Put back the endpoint and the deployment, if the last case deleted them."""
        if self.client.get(f"/api/v1/endpoints/{ENDPOINT}").status_code == 404:
            assert self.client.post("/api/v1/endpoints", json={"name": ENDPOINT}).status_code == 201
        deployments = f"/api/v1/endpoints/{ENDPOINT}/deployments"
        if self.client.get(f"{deployments}/{DEPLOYMENT}").status_code == 404:
            body = {"name": DEPLOYMENT, "script": str(self.code / "score.py"), "code_dir": str(self.code)}
            created = self.client.post(deployments, json=body)
            assert created.status_code == 201, created.text


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    folder = tmp_path_factory.mktemp("controlplane")
    code = folder / "code"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    pass\n\n\ndef run(data):\n    return data\n")
    with api_server(folder) as (address, _):
        plane = ControlPlane(address.api, code)
        plane.restore()
        yield plane
        plane.client.close()


def _operation(label: str) -> APIOperation:
    return next(operation for operation in operations(document()) if operation.label == label)


def _confuse(case: Any, data: st.DataObject) -> None:
    """Give one field of the body (or one field of an object in it) a value of any JSON type; the body is then
    sent as JSON text."""
    if not isinstance(case.body, dict):
        return
    body = dict(case.body)
    field = data.draw(st.sampled_from(sorted(set(body) | set(FIELDS))), label="field")
    value = data.draw(ANY_JSON, label="value")
    if isinstance(body.get(field), dict) or data.draw(st.booleans(), label="inner"):
        inner = body.get(field) if isinstance(body.get(field), dict) else {}
        key = data.draw(st.sampled_from(sorted(set(inner) | set(INNER))), label="inner field")
        value = {**inner, key: value}
    body[field] = value
    case.body = json.dumps(body).encode()  # as Python writes it: NaN and Infinity as literals (requests refuses them)


def _with_real_paths(code: Path) -> Any:
    """Half the bodies that name a script and a code folder get ones that exist."""

    def fix(pair: tuple[Any, bool]) -> Any:
        case, real = pair
        if real and isinstance(case.body, dict) and ("script" in case.body or "code_dir" in case.body):
            case.body = {**case.body, "script": str(code / "score.py"), "code_dir": str(code)}
        return case

    return fix


def _fuzz(
    plane: ControlPlane,
    recorder: Recorder,
    session: requests.Session,
    cases: st.SearchStrategy[Any],
    *,
    confuse: bool,
    restore: bool,
) -> None:
    @fuzz_settings(30)
    @given(case=cases, data=st.data())
    def call(case: Any, data: st.DataObject) -> None:
        if confuse:
            _confuse(case, data)
        recorder.case()
        answer = case.call(base_url=plane.url, session=session, headers=AUTH, timeout=30)
        recorder.answer(answer.status_code)
        assert answer.status_code < 500, f"{case.as_curl_command()}\n-> {answer.status_code} {answer.text}"
        if answer.status_code >= 400:
            assert isinstance(answer.json().get("error"), str), answer.text
        if restore and case.method.upper() == "DELETE":
            plane.restore()

    call()


@pytest.mark.parametrize(("label", "names"), _cases())
def test_no_server_error(control_plane: ControlPlane, recorder: Recorder, label: str, names: str) -> None:
    operation = _operation(label)
    path_names = {parameter.name for parameter in operation.path_parameters}
    fixed = {"name": ENDPOINT, "deployment": DEPLOYMENT} if names == "existing" else {}
    fixed = {name: value for name, value in fixed.items() if name in path_names}
    # Negative data needs something left to break: a body, a query, or a path parameter not fixed here.
    breakable = len(operation.body) or len(operation.query) or (path_names and not fixed)
    kinds = [(GenerationMode.POSITIVE, False)]
    kinds += [(GenerationMode.NEGATIVE, False)] if breakable else []
    kinds += [(GenerationMode.POSITIVE, True)] if len(operation.body) else []  # one field's type confused
    with requests.Session() as session:
        for mode, confuse in kinds:
            strategy = operation.as_strategy(generation_mode=mode, headers=AUTH, path_parameters=fixed or None)
            cases = st.tuples(strategy, st.booleans()).map(_with_real_paths(control_plane.code))
            _fuzz(control_plane, recorder, session, cases, confuse=confuse, restore=bool(fixed))
    assert control_plane.client.get("/api/v1/health").status_code == 200
