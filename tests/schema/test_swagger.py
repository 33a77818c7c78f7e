"""SwaggerDocs: our /swagger.json documents, compared document by document with the reference's (tests/data/swagger).

Every difference from the reference is deliberate and spelled out in `expected_from_reference`.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from scorehost.errors import BadSchema
from scorehost.host.typed import TypedRun
from scorehost.schema import SwaggerDocs

TESTS = Path(__file__).parents[1]
SCRIPTS = TESTS / "scripts"
DATA = TESTS / "data" / "swagger"
VERSIONS = {"2": "swagger2.json", "3": "swagger3.json", "3.1": "swagger3.1.json"}
JSON = dict[str, Any]

# case (a folder of tests/data/swagger) -> script, mode, service settings
CASES: dict[str, tuple[str, str, dict[str, str]]] = {
    "echo": ("echo.py", "plain", {}),
    "typed_rawhttp": ("typed_rawhttp.py", "raw", {}),
    "typed_sklearn_numpy": ("typed_sklearn_numpy.py", "typed", {}),
    "typed_pandas_records": ("typed_pandas_records.py", "typed", {}),
    "typed_nested_standard": ("typed_nested_standard.py", "typed", {}),
    "typed_power_bi": ("typed_power_bi.py", "typed", {}),
    "typed_request_headers": ("typed_request_headers.py", "typed", {}),
    "typed_defaults": ("typed_defaults.py", "typed", {}),
    "typed_unconverted": ("typed_unconverted.py", "typed", {}),
    "typed_mixed_list": ("typed_mixed_list.py", "typed", {}),
    "typed_output_only": ("typed_output_only.py", "typed", {}),
    "typed_date_sample": ("typed_date_sample.py", "typed", {}),
    "service_settings": (
        "typed_sklearn_numpy.py",
        "typed",
        {"service_name": "digits", "service_version": "2.1", "path_prefix": "/api/v1/"},
    ),
}
TYPED = [case for case, (_, mode, _) in CASES.items() if mode == "typed"]
_loads = itertools.count()


def load_run(script: str | Path) -> Callable[..., object]:
    """run() of a fixture, imported under a name of its own (inference-schema keys its registry by `module.run`)."""
    if script == "typed_rawhttp.py":
        # Its `from azureml.contrib.services.aml_request import rawhttp` needs scorehost.compat's import hook,
        # which the HTTP layer installs; a raw document does not depend on run() beyond its mode.
        def run(request: object) -> object:
            return request

        return run
    path = script if isinstance(script, Path) else SCRIPTS / script
    spec = importlib.util.spec_from_file_location(f"{path.stem}_swagger_test_{next(_loads)}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run  # type: ignore[no-any-return]


def docs_for(case: str, app_root: Path = SCRIPTS) -> SwaggerDocs:
    script, mode, settings = CASES[case]
    # tests/scripts was the reference's AML_APP_ROOT too; it holds no swagger*.json.
    return SwaggerDocs(run_function=load_run(script), mode=mode, app_root=app_root, **settings)  # type: ignore[arg-type]


def document(docs: SwaggerDocs, version: str | None) -> JSON:
    status, body = docs.answer(version)
    assert status == 200, body
    parsed: JSON = json.loads(body)
    return parsed


def reference(case: str, name: str) -> JSON:
    parsed: JSON = json.loads((DATA / case / name).read_text(encoding="utf-8"))
    return parsed


def schemas_of(doc: JSON) -> JSON:
    return doc["definitions"] if "swagger" in doc else doc["components"]["schemas"]  # type: ignore[no-any-return]


def expected_from_reference(ref: JSON, ours: JSON, case: str, docs: SwaggerDocs) -> JSON:
    """The reference's document with each of scorehost's deliberate differences applied."""
    expected = copy.deepcopy(ref)
    prefix = "/api/v1" if case == "service_settings" else ""
    paths, schemas, v2 = expected["paths"], schemas_of(expected), "swagger" in expected
    # 1. GET /ready is listed: the reference has no readiness route (test_ready_is_documented checks it).
    paths[f"{prefix}/ready"] = ours["paths"][f"{prefix}/ready"]
    # 1b. GET /live is listed too: liveness, answered while init() runs.
    paths[f"{prefix}/live"] = ours["paths"][f"{prefix}/live"]
    # 2. /swagger.json's `version` lists what this script answers, as strings (the reference: integers 2, 3).
    parameter = paths[f"{prefix}/swagger.json"]["get"]["parameters"][0]
    (parameter if v2 else parameter["schema"]).update(type="string", enum=list(docs.versions))
    # 3. `request_headers` is not a body property: the server fills it from the headers, a body key cannot.
    service_input = schemas["ServiceInput"]
    if case == "typed_request_headers":
        del service_input["properties"]["request_headers"], service_input["example"]["request_headers"]
    # 4. An undecorated parameter with a default has no example value ("" would replace the default).
    if case == "typed_defaults":
        del service_input["example"]["label"]
    # 5. With @output_schema alone, run()'s parameters are still listed (the reference: {"type": "object"}).
    if case == "typed_output_only":
        schemas["ServiceInput"] = service_input = {
            "type": "object",
            "properties": {"data": {}},
            "example": {"data": ""},
        }
    # 6. OpenAPI 3: the body's example at the media type too, so Swagger UI's "try it out" starts from it.
    if not v2 and "example" in service_input:
        paths[f"{prefix}/score"]["post"]["requestBody"]["content"]["application/json"]["example"] = service_input[
            "example"
        ]
    # 7. @rawhttp: /score is described by every method that reaches run() (test_raw_score_* check it).
    if case == "typed_rawhttp":
        paths["/score"] = ours["paths"]["/score"]
    # 8. GET /score is listed, with its query parameters (tests/http/test_serve_docs_document.py checks them).
    else:
        paths[f"{prefix}/score"]["get"] = ours["paths"][f"{prefix}/score"]["get"]
    # 9. No security scheme: `scorehost serve` takes no key (the gateway declares one for a key endpoint).
    for holder in (expected, expected.get("components", {})):
        for name in ("security", "securityDefinitions", "securitySchemes"):
            holder.pop(name, None)
    for item in paths.values():
        for operation in item.values():
            operation.pop("security", None)
    # 10. The description reads "Scoring API of <name>, ...", not "... service ML service".
    expected["info"]["description"] = f"Scoring API of {expected['info']['title']}, served by scorehost"
    return expected


@pytest.fixture(scope="module")
def all_docs() -> dict[str, SwaggerDocs]:
    return {case: docs_for(case) for case in CASES}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_same_document_as_the_reference_but_for_the_named_differences(
    all_docs: dict[str, SwaggerDocs], case: str, version: str
) -> None:
    ref_file = DATA / case / VERSIONS[version]
    if not ref_file.exists():
        assert all_docs[case].answer(version)[0] == 404
        return
    ref = reference(case, VERSIONS[version])
    ours = document(all_docs[case], version)
    expected = expected_from_reference(ref, ours, case, all_docs[case])
    assert ours == expected
    assert list(schemas_of(ours)["ServiceInput"].get("properties", {})) == list(
        schemas_of(expected)["ServiceInput"].get("properties", {})
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_document_is_valid_openapi(all_docs: dict[str, SwaggerDocs], case: str, version: str) -> None:
    status, body = all_docs[case].answer(version)
    if status == 200:
        validate(json.loads(body))
    else:
        assert case == "typed_mixed_list"


@pytest.mark.parametrize("case", CASES)
def test_bad_versions_get_the_reference_messages(all_docs: dict[str, SwaggerDocs], case: str) -> None:
    for asked, name in (("4", "bad_version_4.json"), ("", "bad_version_empty.json")):
        status, body = all_docs[case].answer(asked)
        assert (status, json.loads(body)) == (404, reference(case, name))


def test_a_version_the_script_cannot_be_described_in(all_docs: dict[str, SwaggerDocs]) -> None:
    docs = all_docs["typed_mixed_list"]
    assert docs.versions == ("3", "3.1")
    for asked in ("2", "2.0"):
        assert docs.answer(asked) == (
            404,
            json.dumps(reference("typed_mixed_list", f"swagger{asked}.404.json")).encode(),
        )
    assert docs.answer(None)[0] == 404  # no version means version 2


def test_no_version_and_aliases(all_docs: dict[str, SwaggerDocs]) -> None:
    docs = all_docs["typed_power_bi"]
    assert docs.answer(None) == docs.answer("2") == docs.answer("2.0")
    assert docs.answer("3") == docs.answer("3.0")
    assert document(docs, "3")["openapi"] == "3.0.3"
    assert document(docs, "3.1")["openapi"] == "3.1.0"


def test_ready_is_documented(all_docs: dict[str, SwaggerDocs]) -> None:
    v2, v3 = document(all_docs["echo"], "2"), document(all_docs["echo"], "3")
    assert v2["paths"]["/ready"]["get"]["responses"]["200"]["examples"] == {"application/json": {"status": "ready"}}
    ready3 = v3["paths"]["/ready"]["get"]["responses"]
    assert ready3["200"]["content"]["application/json"]["example"] == {"status": "ready"}
    assert set(ready3) == {"200", "503"}
    assert "/api/v1/ready" in document(all_docs["service_settings"], "3")["paths"]


def test_live_is_documented(all_docs: dict[str, SwaggerDocs]) -> None:
    v2, v3 = document(all_docs["echo"], "2"), document(all_docs["echo"], "3")
    assert v2["paths"]["/live"]["get"]["responses"]["200"]["examples"] == {"application/json": {"status": "alive"}}
    live3 = v3["paths"]["/live"]["get"]["responses"]
    assert live3["200"]["content"]["application/json"]["example"] == {"status": "alive"}


def test_raw_score_lists_every_method_and_any_content_type(all_docs: dict[str, SwaggerDocs]) -> None:
    methods = ["get", "post", "put", "delete", "options", "head"]
    score3 = document(all_docs["typed_rawhttp"], "3")["paths"]["/score"]
    assert list(score3) == methods
    assert score3["post"]["operationId"] == "RunMLService"  # the reference's id, for generated clients
    for method in ("post", "put"):
        assert set(score3[method]["requestBody"]["content"]) == {"application/json", "*/*"}
    assert all("requestBody" not in score3[m] for m in ("get", "delete", "options", "head"))
    assert all("*/*" in score3[m]["responses"]["200"]["content"] for m in methods)
    score2 = document(all_docs["typed_rawhttp"], "2")["paths"]["/score"]
    assert list(score2) == methods
    assert score2["put"]["consumes"] == ["*/*"]
    assert all(score2[m]["produces"] == ["*/*"] for m in methods)
    # What the reference says of the same script: POST only, JSON only.
    assert list(reference("typed_rawhttp", "swagger3.json")["paths"]["/score"]) == ["post"]


@pytest.mark.parametrize("case", TYPED)
def test_the_request_example_is_a_request_that_works(all_docs: dict[str, SwaggerDocs], case: str) -> None:
    """Swagger UI's "try it out" sends the media type's example: our typed run() must accept it."""
    doc = document(all_docs[case], "3")
    score = doc["paths"]["/api/v1/score" if case == "service_settings" else "/score"]
    body = score["post"]["requestBody"]["content"]["application/json"]
    script, _, _ = CASES[case]
    typed = TypedRun.detect(load_run(script), SCRIPTS / script)
    assert typed is not None
    typed.build_kwargs(json.loads(json.dumps(body["example"])))  # raises if a parameter cannot be converted
    if case == "typed_mixed_list":
        return  # inference-schema describes a mixed array by its last item's type: its own example fails that
    schemas = doc["components"]["schemas"]
    for name in ("ServiceInput", "ServiceOutput"):
        if "example" in schemas[name]:
            OAS30Validator(schemas[name]).validate(schemas[name]["example"])


def test_service_settings_and_path_prefix(all_docs: dict[str, SwaggerDocs]) -> None:
    doc = document(all_docs["service_settings"], "3.1")
    assert doc["info"] == {**reference("service_settings", "swagger3.1.json")["info"], "description": ANY}
    assert list(doc["paths"]) == ["/api/v1/", "/api/v1/score", "/api/v1/swagger.json", "/api/v1/ready", "/api/v1/live"]
    lone_slash = SwaggerDocs(run_function=load_run("echo.py"), mode="plain", app_root=SCRIPTS, path_prefix="/")
    assert list(document(lone_slash, "2")["paths"]) == ["/", "/score", "/swagger.json", "/ready", "/live"]


def test_every_decorator_counts_for_the_versions(write_script: Callable[..., Path]) -> None:
    """The reference asks only the outermost @input_schema; an inner mixed array would be misdescribed in v2."""
    script = write_script(
        """
        from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
        from inference_schema.schema_decorators import input_schema

        @input_schema("a", StandardPythonParameterType(1))
        @input_schema("row", StandardPythonParameterType(["x", 1]))
        def run(a, row):
            return row
        """
    )
    docs = SwaggerDocs(run_function=load_run(script), mode="typed", app_root=script.parent)
    assert docs.versions == ("3", "3.1")


# --- a user's own documents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "version", "served"),
    [
        ({"swagger2.json": '{"mine": 2}'}, "2", '{"mine": 2}'),
        ({"swagger.json": '{"old": 1}', "swagger2.json": '{"mine": 2}'}, None, '{"old": 1}'),
        ({"swagger.json": "{}", "swagger2.json": '{"mine": 2}'}, "2.0", '{"mine": 2}'),
        ({"swagger3.json": ' {"openapi" : "3.0.0"}\n'}, "3", ' {"openapi" : "3.0.0"}\n'),
        ({"swagger3.json": '{"a": 1}', "swagger3.1.json": '{"b": 1}'}, "3.1", '{"b": 1}'),
    ],
)
def test_user_documents_are_served_as_they_are(
    tmp_path: Path, files: dict[str, str], version: str | None, served: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    docs = SwaggerDocs(run_function=load_run("typed_power_bi.py"), mode="typed", app_root=tmp_path)
    assert docs.answer(version) == (200, served.encode())


def test_an_empty_user_document_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "swagger3.json").write_text("{}", encoding="utf-8")
    docs = SwaggerDocs(run_function=load_run("echo.py"), mode="plain", app_root=tmp_path)
    assert document(docs, "3")["openapi"] == "3.0.3"
    assert docs.user_files == {}


def test_a_user_document_makes_its_version_available(tmp_path: Path) -> None:
    (tmp_path / "swagger2.json").write_text('{"swagger": "2.0"}', encoding="utf-8")
    docs = SwaggerDocs(run_function=load_run("typed_mixed_list.py"), mode="typed", app_root=tmp_path)
    assert docs.versions == ("2", "3", "3.1")
    assert docs.user_files == {"2": tmp_path / "swagger2.json"}
    assert document(docs, "3")["paths"]["/swagger.json"]["get"]["parameters"][0]["schema"]["enum"] == ["2", "3", "3.1"]


def test_a_user_document_that_is_not_json_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "swagger3.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BadSchema, match=r"swagger3\.json is not valid JSON .*fix it, or remove it"):
        SwaggerDocs(run_function=load_run("echo.py"), mode="plain", app_root=tmp_path)
