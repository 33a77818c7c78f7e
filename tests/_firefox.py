"""Debian's headless Firefox ESR, driven over WebDriver BiDi, the protocol Firefox speaks itself.

Debian packages no geckodriver, and nothing may be downloaded; Firefox's own remote agent needs none. A page's
Content-Security-Policy violations and script errors are collected by a preload script, so a test can assert
there were none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

FIREFOX = Path("/usr/bin/firefox-esr")
_LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
# Runs before any script of every page: records what the browser refused or what failed.
_WATCH = """() => {
  window.__problems = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__problems.push("CSP " + e.violatedDirective + " blocked " + e.blockedURI);
  });
  window.addEventListener("error", (e) => { window.__problems.push("error " + (e.message || e.target.src)); }, true);
}"""


class Firefox:
    """One browsing context of a Firefox session."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.command("session.new", capabilities={})
        self.context = self.command("browsingContext.getTree")["contexts"][0]["context"]
        self.command("script.addPreloadScript", functionDeclaration=_WATCH)

    def command(self, method: str, **params: Any) -> Any:
        sent = next(self._ids)
        self._socket.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:  # events may come first
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") != sent:
                continue
            if message.get("type") == "error":
                raise AssertionError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def open(self, url: str) -> None:
        self.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise), as plain JSON."""
        answer = self.command(
            "script.evaluate",
            expression=f"(async () => JSON.stringify(await ({expression})))()",
            target={"context": self.context},
            awaitPromise=True,
        )
        if answer.get("type") == "exception":
            raise AssertionError(f"{expression}: {answer['exceptionDetails'].get('text')}")
        value = answer["result"].get("value")
        return None if value is None else json.loads(value)

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
            time.sleep(0.2)
        return value

    def problems(self) -> list[str]:
        return list(self.evaluate("window.__problems || []"))

    def viewport(self, width: int, height: int) -> None:
        self.command("browsingContext.setViewport", context=self.context, viewport={"width": width, "height": height})

    def screenshot(self, path: Path) -> None:
        data = self.command("browsingContext.captureScreenshot", context=self.context)["data"]
        path.write_bytes(base64.b64decode(data))


@contextlib.contextmanager
def firefox(profile: Path) -> Iterator[Firefox]:
    """Headless Firefox for a `with` block; skips the test when Debian's firefox-esr is not installed."""
    if not FIREFOX.exists():
        pytest.skip("the Firefox test needs Debian's firefox-esr: apt-get install firefox-esr")
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "user.js").write_text(  # no update, telemetry or other traffic from the browser itself
        'user_pref("app.update.enabled", false);\n'
        'user_pref("datareporting.policy.dataSubmissionEnabled", false);\n'
        'user_pref("toolkit.telemetry.enabled", false);\n'
        'user_pref("network.captive-portal-service.enabled", false);\n'
        'user_pref("browser.shell.checkDefaultBrowser", false);\n'
    )
    log = profile / "firefox.log"  # a file, not a pipe: Firefox writes much, and a full pipe would stop it
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(FIREFOX), "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port", "0"],
            stdout=output,
            stderr=output,
        )
    try:
        address = None
        deadline = time.monotonic() + 60
        while address is None and time.monotonic() < deadline and process.poll() is None:
            if found := _LISTENING.search(log.read_text(errors="replace")):
                address = found.group(1)
            time.sleep(0.1)
        assert address, f"Firefox did not start its WebDriver BiDi agent: {log.read_text(errors='replace')[-2000:]}"
        with connect(f"{address}/session", max_size=64 * 1024 * 1024, open_timeout=30) as socket:
            yield Firefox(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
