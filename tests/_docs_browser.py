"""Driving Debian's headless Chromium through Swagger UI's "Try it out" for the /docs tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
_NEEDED = ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver"))
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers have a small /dev/shm
)


@dataclass
class TryItOut:
    """What the page showed and did."""

    paths: list[str]
    request_body: str
    status: str
    response_body: str
    resources: list[str]
    console_errors: list[str]


def start_chromium(binary: Path, driver: Path, profile: Path) -> WebDriver:
    """Chromium under the given chromedriver; naming both keeps Selenium Manager from downloading anything."""
    options = Options()
    options.binary_location = str(binary)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(driver)), options=options)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """Debian's headless Chromium for a `with` block; skips the test when it is not installed."""
    missing = [f"{path} (Debian package {package})" for path, package in _NEEDED if not path.exists()]
    if missing:
        pytest.skip(f"browser tests need {' and '.join(missing)}: apt-get install chromium chromium-driver")
    driver = start_chromium(CHROMIUM, CHROMEDRIVER, profile)
    try:
        yield driver
    finally:
        driver.quit()


def try_it_out(driver: WebDriver, url: str, timeout: float = 30) -> TryItOut:
    """Open the page, expand POST /score, press "Try it out" then "Execute", and read the live response."""
    driver.get_log("browser")  # forget what earlier pages logged
    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    css = By.CSS_SELECTOR
    wait.until(expected_conditions.element_to_be_clickable((css, ".opblock-post .opblock-summary"))).click()
    paths = [node.get_attribute("data-path") or "" for node in driver.find_elements(css, ".opblock-summary-path")]
    wait.until(expected_conditions.element_to_be_clickable((css, ".opblock-post .try-out__btn"))).click()
    request_body = wait.until(expected_conditions.visibility_of_element_located((css, "textarea.body-param__text")))
    request_text = request_body.get_property("value")
    wait.until(expected_conditions.element_to_be_clickable((css, ".opblock-post button.execute"))).click()
    status = wait.until(
        expected_conditions.visibility_of_element_located((css, ".live-responses-table tbody .response-col_status"))
    )
    body = driver.find_element(css, ".live-responses-table tbody .response-col_description .highlight-code pre")
    resources = driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource').map(function (e) { return e.name; }))"
    )
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return TryItOut(
        paths=paths,
        request_body=str(request_text),
        status=status.text.strip(),
        response_body=body.text,
        resources=list(resources),
        console_errors=errors,
    )
