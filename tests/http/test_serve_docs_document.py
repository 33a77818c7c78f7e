"""`scorehost serve`'s own API document and /docs page: no key asked for (the server takes none), GET /score
described and usable, and a title and description that read naturally. The page in a real headless Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _docs_browser import chromium
from conftest import Server, served
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from scorehost.schema import SwaggerDocs

SCRIPTS = Path(__file__).parents[1] / "scripts"
SECURITY = ("security", "securityDefinitions", "securitySchemes")


def keys_of(value: Any) -> set[str]:
    """Every key of every object in a JSON value."""
    if isinstance(value, dict):
        return set(value).union(*(keys_of(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(item) for item in value))
    return set()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with served("typed_sklearn_numpy.py") as running:
        yield running


@pytest.fixture(scope="module")
def documents(server: Server) -> dict[str, dict[str, Any]]:
    with server.client() as client:
        return {v: client.get("/swagger.json", params={"version": v}).json() for v in ("2", "3", "3.1")}


# --- the document ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "3", "3.1"])
def test_no_security_scheme_the_server_takes_no_key(documents: dict[str, dict[str, Any]], version: str) -> None:
    assert not keys_of(documents[version]) & set(SECURITY)


@pytest.mark.parametrize("version", ["2", "3", "3.1"])
def test_title_and_description_read_naturally(documents: dict[str, dict[str, Any]], version: str) -> None:
    info = documents[version]["info"]
    assert info["title"] == "ML service"  # SERVICE_NAME, as on the reference
    assert info["description"] == "Scoring API of ML service, served by scorehost"
    assert "service ML service" not in json.dumps(documents[version])


def test_get_score_is_described_with_json_query_parameters(documents: dict[str, dict[str, Any]]) -> None:
    get3 = documents["3"]["paths"]["/score"]["get"]
    assert get3["operationId"] == "RunMLServiceGet"
    (data,) = get3["parameters"]
    # A text, the value's JSON: Swagger UI shows and sends it as it is (the value's schema is ServiceInput's).
    assert (data["name"], data["in"], data["schema"]) == ("data", "query", {"type": "string"})
    assert json.loads(data["example"]) == [[1.0, 2.0], [-1.0, -0.5]]
    (data2,) = documents["2"]["paths"]["/score"]["get"]["parameters"]
    assert (data2["name"], data2["in"], data2["type"]) == ("data", "query", "string")
    assert data2["x-example"] == data["example"]
    assert list(documents["3"]["paths"]["/score"]) == ["post", "get"]


def test_get_score_answers_as_described(server: Server, documents: dict[str, dict[str, Any]]) -> None:
    example = documents["3"]["paths"]["/score"]["get"]["parameters"][0]["example"]
    with server.client() as client:
        got = client.get("/score", params={"data": example})
        posted = client.post("/score", json={"data": json.loads(example)})
    assert got.status_code == 200, got.text
    assert got.json() == posted.json() == [1, 0]


def test_an_undecorated_run_takes_any_query_parameters() -> None:
    def run(data: object) -> object:
        return data

    status, body = SwaggerDocs(run_function=run, mode="plain", app_root=SCRIPTS).answer("3")
    assert status == 200
    (query,) = json.loads(body)["paths"]["/score"]["get"]["parameters"]
    assert (query["in"], query["style"], query["explode"]) == ("query", "form", True)
    assert query["schema"] == {"type": "object", "additionalProperties": {"type": "string"}, "example": {}}


# --- the page, in a browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def test_the_page_asks_for_no_key_and_runs_get_score(server: Server, browser: WebDriver) -> None:
    browser.get_log("browser")
    browser.get(server.url + "/docs")
    wait = WebDriverWait(browser, 30)
    css = By.CSS_SELECTOR
    operation = "#operations-default-RunMLServiceGet"
    wait.until(expected_conditions.element_to_be_clickable((css, f"{operation} .opblock-summary"))).click()
    title = browser.find_element(css, ".info .title").text
    description = browser.find_element(css, ".info .description").text
    assert browser.find_elements(css, ".btn.authorize") == []  # no Authorize button
    assert browser.find_elements(css, ".authorization__btn") == []  # no padlock on any operation
    wait.until(expected_conditions.element_to_be_clickable((css, f"{operation} .try-out__btn"))).click()
    field = wait.until(expected_conditions.visibility_of_element_located((css, f"{operation} .parameters input")))
    assert json.loads(str(field.get_property("value"))) == [[1.0, 2.0], [-1.0, -0.5]]  # the example, filled in
    wait.until(expected_conditions.element_to_be_clickable((css, f"{operation} button.execute"))).click()
    status = wait.until(
        expected_conditions.visibility_of_element_located(
            (css, f"{operation} .live-responses-table tbody .response-col_status")
        )
    )
    body = browser.find_element(css, f"{operation} .live-responses-table .response-col_description .highlight-code pre")
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert title.startswith("ML service")
    assert description == "Scoring API of ML service, served by scorehost"
    assert status.text.strip() == "200", body.text
    assert json.loads(body.text) == [1, 0]
    assert errors == []
