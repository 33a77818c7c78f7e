"""The web console in a real headless Chromium, against a real control plane, gateway and deployments.

One control plane for the module (sampling metrics every half second, so charts move quickly), an endpoint
`shop` with two `scorehost serve` deployments of tests/scripts/whoami (`blue` runs a registered model), and one
browser. The pages are signed in to with a one-time link, browsed (changing nothing), used to change the traffic
split, to send a test request, to watch a chart move under load and an instance's restart after it is killed.
Screenshots go to $SCOREHOST_CONSOLE_SCREENSHOTS when set (docs/console.md's pictures), else to a temp folder.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _control_plane import free_port, wait_deployment_ready
from _docs_browser import chromium
from _firefox import firefox
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from scorehost.client import Client
from scorehost.deploy.controlplane.daemon import start_control_plane, stop_control_plane
from scorehost.registry import Registry

WHOAMI = Path(__file__).parents[1] / "scripts" / "whoami"
CSS = By.CSS_SELECTOR

pytestmark = pytest.mark.timeout(300)


@dataclass
class Plane:
    client: Client
    console: str  # the console's base URL, http://127.0.0.1:PORT/console
    gateway: str
    key: str
    shots: Path

    def snapshot(self) -> Any:
        """Everything a page could change by accident."""
        endpoint = self.client.get_endpoint("shop")
        deployments = [{k: v for k, v in d.items() if k != "status"} for d in endpoint.pop("deployments")]
        return endpoint, deployments, self.client.keys("shop"), self.client._call("GET", "/api/v1/models/digits")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    home = tmp_path_factory.mktemp("console-e2e") / "home"
    model = tmp_path_factory.mktemp("model") / "model.pkl"
    model.write_bytes(b"the digits model")
    with Registry(home) as registry:
        registry.register("digits", model, description="a stand-in for the digits classifier")
    os.environ["SCOREHOST_CONTROLPLANE_CONSOLE_SAMPLE_INTERVAL"] = "0.5"  # read by the control plane it starts
    try:
        address = start_control_plane(home, api_port=0, gateway_port=free_port())
    finally:
        del os.environ["SCOREHOST_CONTROLPLANE_CONSOLE_SAMPLE_INTERVAL"]
    shots = Path(os.environ.get("SCOREHOST_CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    try:
        with Client(address=address, timeout=30) as client:
            client.create_endpoint("shop", description="the shop's digit reader")
            for name, models in (("blue", ["digits:1"]), ("green", [])):
                client.create_deployment(
                    "shop",
                    name,
                    script="score.py",
                    code_dir=WHOAMI,
                    models=models,
                    environment={"DEPLOYMENT_NAME": name},
                )
            for name in ("blue", "green"):
                wait_deployment_ready(client, "shop", name)
            client.set_traffic("shop", {"blue": 100, "green": 0})
            yield Plane(
                client, f"{address.api}/console", address.gateway.rstrip("/"), client.keys("shop")["primary"], shots
            )
    finally:
        stop_control_plane(home)


@pytest.fixture(scope="module")
def browser(plane: Plane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("console-profile")) as driver:
        driver.set_window_size(1280, 1000)
        driver.get(plane.client.console_link())
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((CSS, "table#endpoints")))
        yield driver


def _errors(driver: WebDriver) -> list[str]:
    """What the page logged as errors: a script error, a refused asset, a Content-Security-Policy violation."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _shot(driver: WebDriver, plane: Plane, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 140, 600), 4000))  # the whole page in one picture
    driver.save_screenshot(str(plane.shots / f"console-{name}.png"))


def test_sign_in_is_needed_and_a_wrong_token_is_refused(plane: Plane, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as fresh:
        fresh.get(f"{plane.console}/endpoints/shop")
        wait = WebDriverWait(fresh, 30)
        field = wait.until(expected_conditions.visibility_of_element_located((CSS, "input#token")))
        field.send_keys("not-the-token")
        fresh.find_element(CSS, ".signin button[type=submit]").click()
        alert = wait.until(expected_conditions.visibility_of_element_located((CSS, "p.error")))
        assert "not this control plane's token" in alert.text
        _shot(fresh, plane, "signin")
        fresh.get_log("browser")  # the refused sign-in's 401, expected
        token = plane.client.address.token
        fresh.find_element(CSS, "input#token").send_keys(token)
        fresh.find_element(CSS, ".signin button[type=submit]").click()
        wait.until(expected_conditions.presence_of_element_located((CSS, "section#keys")))
        assert fresh.current_url.endswith("/console/endpoints/shop")  # where the user was going
        assert _errors(fresh) == []


def test_every_page_renders_without_an_error_and_changes_nothing(plane: Plane, browser: WebDriver) -> None:
    before = plane.snapshot()
    browser.get_log("browser")
    pages = {
        "endpoints": ("/", "table#endpoints"),
        "endpoint": ("/endpoints/shop", "form#traffic-form"),
        "deployment": ("/endpoints/shop/deployments/blue", "table.instances"),
        "models": ("/models", "table#models"),
        "model": ("/models/digits", "table.files"),
    }
    for name, (page, marker) in pages.items():
        browser.set_window_size(1280, 1000)
        browser.get(plane.console + page)
        WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((CSS, marker)))
        time.sleep(1.5)  # the charts draw their first points
        _shot(browser, plane, name)
        assert _errors(browser) == [], name
    text = browser.find_element(CSS, "main").text
    assert "shop/blue" in text
    assert "a stand-in for the digits classifier" in text
    origin = plane.console.removesuffix("/console")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded
    assert [url for url in loaded if not url.startswith(origin + "/console/")] == []  # nothing from elsewhere
    assert plane.snapshot() == before


def test_the_log_tail_shows_a_request_made_after_the_page_opened(plane: Plane, browser: WebDriver) -> None:
    browser.set_window_size(1280, 1000)
    browser.get(f"{plane.console}/endpoints/shop/deployments/blue")
    tail = browser.find_element(CSS, "#log-tail")
    marker = f"console-tail-{time.monotonic_ns()}"
    assert marker not in tail.text
    answer = httpx.post(
        f"{plane.gateway}/endpoints/shop/score",
        json={"data": 1},
        headers={"Authorization": f"Bearer {plane.key}", "x-request-id": marker},
        timeout=30,
    )
    assert answer.status_code == 200
    WebDriverWait(browser, 30).until(lambda _: marker in tail.text)  # refreshed in place, no reload


def test_the_traffic_form_changes_the_split_and_shows_what_the_api_refuses(plane: Plane, browser: WebDriver) -> None:
    browser.set_window_size(1280, 1000)
    browser.get(f"{plane.console}/endpoints/shop")
    wait = WebDriverWait(browser, 30)

    def submit(blue: str, green: str) -> None:
        for name, value in (("blue", blue), ("green", green)):
            field = browser.find_element(CSS, f"input[name='traffic.{name}']")
            field.clear()
            field.send_keys(value)
        browser.find_element(CSS, "#traffic-form button[type=submit]").click()

    submit("40", "40")
    alert = wait.until(expected_conditions.visibility_of_element_located((CSS, "p.error")))
    assert "100" in alert.text
    assert plane.client.get_endpoint("shop")["traffic"] == {"blue": 100, "green": 0}
    submit("40", "60")
    notice = wait.until(expected_conditions.visibility_of_element_located((CSS, "p.notice")))
    assert "Traffic updated" in notice.text
    assert plane.client.get_endpoint("shop")["traffic"] == {"blue": 40, "green": 60}
    seen = set()
    with httpx.Client(timeout=30) as http:
        for _ in range(30):
            answer = http.post(
                f"{plane.gateway}/endpoints/shop/score",
                json={"data": 1},
                headers={"Authorization": f"Bearer {plane.key}"},
            )
            seen.add(answer.json()["deployment"])
    assert seen == {"blue", "green"}
    plane.client.set_traffic("shop", {"blue": 100, "green": 0})


def test_the_test_panel_sends_a_request_through_the_gateway(plane: Plane, browser: WebDriver) -> None:
    browser.set_window_size(1280, 1000)
    browser.get_log("browser")  # only this test's
    browser.get(f"{plane.console}/endpoints/shop")
    wait = WebDriverWait(browser, 30)
    body = browser.find_element(CSS, "#test-body")
    assert '"data"' in body.get_property("value")
    browser.find_element(CSS, "#test-form select[name=deployment] option[value=green]").click()
    body.clear()
    body.send_keys('{"data": [1, 2, 3]}')
    browser.find_element(CSS, "#test-form button[type=submit]").click()
    answer = wait.until(expected_conditions.visibility_of_element_located((CSS, "#test-answer")))
    assert answer.get_attribute("data-status") == "200", answer.text
    shown = browser.find_element(CSS, "#test-answer pre.body").text
    assert '"deployment": "green"' in shown
    assert '"received": "[1,2,3]"' in shown  # run() gets the JSON text of "data", as on Azure ML
    browser.find_element(CSS, "#test-answer details summary").click()
    assert "azureml-model-deployment" in browser.find_element(CSS, "#test-answer table.headers").text
    _shot(browser, plane, "test-panel")
    assert _errors(browser) == []


def test_a_chart_moves_after_load(plane: Plane, browser: WebDriver) -> None:
    browser.set_window_size(1280, 1000)
    browser.get(f"{plane.console}/endpoints/shop")
    charts = browser.find_element(CSS, ".charts")
    WebDriverWait(browser, 30).until(lambda _: charts.get_attribute("data-points") is not None)
    with httpx.Client(timeout=30) as http:
        for _ in range(60):
            http.post(
                f"{plane.gateway}/endpoints/shop/score",
                json={"data": 1},
                headers={"Authorization": f"Bearer {plane.key}"},
            )
    WebDriverWait(browser, 30).until(lambda _: float(charts.get_attribute("data-requests") or 0) > 0)
    assert len(browser.find_elements(CSS, ".charts canvas")) == 3
    _shot(browser, plane, "charts")


def test_a_killed_instance_shows_its_restart_and_cause(plane: Plane, browser: WebDriver) -> None:
    instance = plane.client.get_deployment("shop", "blue")["status"]["instances"][0]
    os.kill(int(instance["pid"]), signal.SIGKILL)
    browser.set_window_size(1280, 1000)
    deadline = time.monotonic() + 60
    while True:
        browser.get(f"{plane.console}/endpoints/shop/deployments/blue")
        cells = browser.find_elements(CSS, "table.instances td.restarts")
        if cells and cells[0].text.strip() == "1":
            break
        assert time.monotonic() < deadline, browser.find_element(CSS, "main").text
        time.sleep(0.5)
    row = browser.find_element(CSS, "table.instances tbody tr").text
    assert "signal" in row.lower() or "exit" in row.lower() or "killed" in row.lower(), row
    wait_deployment_ready(plane.client, "shop", "blue")


def test_pages_fit_a_phones_width(plane: Plane, browser: WebDriver) -> None:
    browser.set_window_size(390, 844)
    for page in ("/", "/endpoints/shop", "/endpoints/shop/deployments/blue", "/models/digits"):
        browser.get(plane.console + page)
        time.sleep(1)  # the charts are drawn
        wide = browser.execute_script(
            "var w = document.documentElement.clientWidth, out = [];"
            "document.querySelectorAll('body *').forEach(function (e) {"
            "  if (e.closest('.scroll')) return;"
            "  if (e.getBoundingClientRect().right > w + 1) out.push(e.outerHTML.slice(0, 80));"
            "});"
            "return out;"
        )
        assert wide == [], page  # only tables scroll sideways, inside their own box
    _shot(browser, plane, "phone")


def test_firefox_renders_the_pages_and_sends_a_test_request(plane: Plane, tmp_path: Path) -> None:
    with firefox(tmp_path / "firefox") as browser:
        browser.viewport(1280, 1000)
        browser.open(plane.client.console_link())
        assert browser.wait_for("document.querySelector('table#endpoints') !== null")
        for page in ("/", "/endpoints/shop", "/endpoints/shop/deployments/blue", "/models", "/models/digits"):
            browser.open(plane.console + page)
            assert browser.evaluate("document.querySelector('main h1').textContent"), page
            assert browser.problems() == [], page
        browser.open(f"{plane.console}/endpoints/shop")
        assert browser.wait_for("document.querySelectorAll('.charts canvas').length") == 3
        browser.evaluate("document.querySelector('#test-form button[type=submit]').click() || true")
        status = browser.wait_for("document.querySelector('#test-answer')?.dataset.status")
        assert status == "200"
        browser.viewport(390, 844)
        browser.open(f"{plane.console}/endpoints/shop")
        assert browser.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 1
        assert browser.problems() == []
        browser.screenshot(plane.shots / "console-firefox-phone.png")
