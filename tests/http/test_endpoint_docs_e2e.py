"""An endpoint's docs page through the gateway, in a real headless Chromium, and the deployment each answer names.

One real control plane for the module (its gateway and three `scorehost serve` deployments of
tests/scripts/whoami): `keyed` (key auth, deployment `blue`) and `open` (no key, `blue` and `green` sharing
the traffic). A browser opens `keyed`'s page without a key, types the key into Swagger UI's Authorize box and
gets a prediction from "Try it out"; on `open` "Try it out" reaches `/endpoints/open/score` with no key at all.
Every answer a deployment gave carries `azureml-model-deployment: <its name>`, as on Azure ML.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _control_plane import free_port, wait_deployment_ready
from _docs_browser import chromium, try_it_out
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from scorehost.client import Client
from scorehost.deploy.controlplane.daemon import start_control_plane, stop_control_plane

WHOAMI = Path(__file__).parents[1] / "scripts" / "whoami"
HEADER = "azureml-model-deployment"

pytestmark = pytest.mark.timeout(240)


@dataclass
class Plane:
    """The running control plane: its client, the gateway's base URL and `keyed`'s primary key."""

    client: Client
    gateway: str
    key: str


def _deploy(client: Client, endpoint: str, name: str) -> None:
    client.create_deployment(endpoint, name, script="score.py", code_dir=WHOAMI, environment={"DEPLOYMENT_NAME": name})


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    home = tmp_path_factory.mktemp("docs-e2e") / "home"
    address = start_control_plane(home, api_port=0, gateway_port=free_port())
    try:
        with Client(address=address, timeout=30) as client:
            client.create_endpoint("keyed")
            client.create_endpoint("open", auth="none")
            for endpoint, name in (("keyed", "blue"), ("open", "blue"), ("open", "green")):
                _deploy(client, endpoint, name)  # the three start together
            for endpoint, name in (("keyed", "blue"), ("open", "blue"), ("open", "green")):
                wait_deployment_ready(client, endpoint, name)
            client.set_traffic("open", {"blue": 50, "green": 50})
            time.sleep(0.3)  # the gateway re-reads its routes
            yield Plane(client, address.gateway.rstrip("/"), client.keys("keyed")["primary"])
    finally:
        stop_control_plane(home)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


# --- a key endpoint: the page is open, /score is not ----------------------------------------------------


def test_a_key_endpoints_page_and_document_open_without_the_key(plane: Plane) -> None:
    base = f"{plane.gateway}/endpoints/keyed"
    with httpx.Client(timeout=30) as http:
        page = http.get(f"{base}/docs")
        assert page.status_code == 200, page.text
        css = http.get(f"{base}/docs/swagger-ui.css")
        assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
        assert http.head(f"{base}/docs/swagger-ui-bundle.js").status_code == 200
        document = http.get(f"{base}/swagger.json", params={"version": "3"}).json()
        # Only reading is open: /score, and any other method, still need the key.
        for method, path in (("POST", "score"), ("GET", "score"), ("POST", "docs"), ("POST", "swagger.json")):
            refused = http.request(method, f"{base}/{path}")
            assert refused.status_code == 401, (method, path, refused.text)
            assert refused.headers["www-authenticate"] == "Bearer"
    assert document["servers"][0]["url"] == "/endpoints/keyed"
    assert document["components"]["securitySchemes"]["Bearer"]["scheme"] == "bearer"
    assert document["paths"]["/score"]["post"]["security"] == [{"Bearer": []}]
    assert plane.key not in json.dumps(document)


def authorize(driver: WebDriver, key: str, wait: WebDriverWait[WebDriver]) -> None:
    """Type `key` into the page's Authorize box, as a user would."""
    css = By.CSS_SELECTOR
    wait.until(expected_conditions.element_to_be_clickable((css, ".auth-wrapper .btn.authorize"))).click()
    field = wait.until(expected_conditions.visibility_of_element_located((css, "input[aria-label=auth-bearer-value]")))
    field.send_keys(key)
    driver.find_element(css, ".modal-ux button.authorize[type=submit]").click()
    wait.until(expected_conditions.element_to_be_clickable((css, ".modal-ux .btn-done"))).click()
    wait.until(expected_conditions.invisibility_of_element_located((css, ".modal-ux")))


def test_the_key_typed_into_authorize_reaches_score(plane: Plane, browser: WebDriver) -> None:
    browser.get_log("browser")
    browser.get(f"{plane.gateway}/endpoints/keyed/docs")  # no key: a browser cannot send one to open a page
    wait = WebDriverWait(browser, 30)
    authorize(browser, plane.key, wait)
    css = By.CSS_SELECTOR
    wait.until(expected_conditions.element_to_be_clickable((css, ".opblock-post .opblock-summary"))).click()
    wait.until(expected_conditions.element_to_be_clickable((css, ".opblock-post .try-out__btn"))).click()
    wait.until(expected_conditions.element_to_be_clickable((css, ".opblock-post button.execute"))).click()
    status = wait.until(
        expected_conditions.visibility_of_element_located((css, ".live-responses-table tbody .response-col_status"))
    )
    body = browser.find_element(css, ".live-responses-table tbody .response-col_description .highlight-code pre")
    curl = browser.find_element(css, ".opblock-post .curl-command .curl").text
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert status.text.strip() == "200", body.text
    assert json.loads(body.text)["deployment"] == "blue"
    assert f"{plane.gateway}/endpoints/keyed/score" in curl
    assert f"Authorization: Bearer {plane.key}" in curl
    assert all(url.startswith(f"{plane.gateway}/endpoints/keyed/") for url in resources), resources  # offline
    assert errors == []  # no asset refused, no CSP violation, no script error


# --- an open endpoint: "Try it out" reaches the endpoint, not the gateway's root ---------------------------


@pytest.mark.parametrize("page", ["docs", "docs/"])
def test_try_it_out_on_an_open_endpoint(plane: Plane, browser: WebDriver, page: str) -> None:
    result = try_it_out(browser, f"{plane.gateway}/endpoints/open/{page}")
    assert result.status == "200", result.response_body
    assert json.loads(result.response_body)["deployment"] in {"blue", "green"}
    assert "/score" in result.paths
    assert all(url.startswith(f"{plane.gateway}/endpoints/open/") for url in result.resources), result.resources
    assert result.console_errors == []


# --- azureml-model-deployment on the answers -------------------------------------------------------------


def test_each_answer_names_the_deployment_that_gave_it(plane: Plane) -> None:
    url = f"{plane.gateway}/endpoints/open/score"
    seen: collections.Counter[str] = collections.Counter()
    with httpx.Client(timeout=30) as http:
        for _ in range(60):
            answer = http.post(url, json={"data": 1})
            assert answer.status_code == 200, answer.text
            assert answer.headers.get_list(HEADER) == [answer.json()["deployment"]]  # once, and the right one
            seen[answer.headers[HEADER]] += 1
        chosen = http.post(url, json={"data": 1}, headers={HEADER: "green"})
        assert chosen.headers.get_list(HEADER) == ["green"]
        # The docs, its assets and the document are a deployment's answers too.
        for path in ("docs", "docs/swagger-ui.css", "swagger.json"):
            assert http.get(f"{plane.gateway}/endpoints/open/{path}").headers[HEADER] in {"blue", "green"}
        keyed = http.post(f"{plane.gateway}/endpoints/keyed/score", headers={"Authorization": f"Bearer {plane.key}"})
        assert keyed.headers.get_list(HEADER) == ["blue"]
        # The gateway's own answers came from no deployment.
        for own in (
            http.post(f"{plane.gateway}/endpoints/keyed/score"),  # 401
            http.post(f"{plane.gateway}/endpoints/nope/score"),  # 404
            http.post(url, headers={HEADER: "red"}),  # 404: no such deployment
        ):
            assert own.status_code in (401, 404)
            assert HEADER not in own.headers
    assert set(seen) == {"blue", "green"}, seen  # 60 draws of a 50/50 split: both answer
