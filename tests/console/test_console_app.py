"""The console over real HTTP: sign-in, cookies, CSRF, headers, and forms that refuse what the API refuses.

One control-plane API server (real Werkzeug server, real SQLite file, the deployer that records its calls) with
the console mounted as `scorehost controlplane run` mounts it; httpx plays the browser. The pages in a real
browser, against a real control plane and real deployments: test_console_browser.py.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _control_plane import TOKEN, RecordingDeployer
from werkzeug.serving import make_server

from scorehost.console import ConsoleApp, mount
from scorehost.console.sessions import SignIns
from scorehost.deploy.controlplane.api import ControlPlaneApp
from scorehost.deploy.spec import DeploymentSpec, EndpointSpec, Traffic
from scorehost.deploy.state import DeployState
from scorehost.registry import Registry, database


@dataclass
class Console:
    url: str
    state: DeployState
    home: Path
    sign_ins: SignIns

    @contextlib.contextmanager
    def browser(self) -> Iterator[httpx.Client]:
        """A signed-in client, with the cookie a one-time link sets."""
        with httpx.Client(base_url=self.url, follow_redirects=False) as client:
            answer = client.get(f"/console/signin/{self.sign_ins.new_link()}")
            assert answer.status_code == 303, answer.text
            yield client


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    home = tmp_path_factory.mktemp("console-http")
    model = home / "model.pkl"
    model.write_bytes(b"weights-1")
    with Registry(home) as registry:
        registry.register("digits", model)
        model.write_bytes(b"weights-2")
        registry.register("digits", model)
    engine = database.connect(f"sqlite:///{home / 'registry.db'}")
    state = DeployState(engine)
    state.create_endpoint(EndpointSpec("shop"))
    script = home / "score.py"
    script.write_text("def init(): pass\ndef run(data): return data\n")
    for name in ("blue", "green"):
        spec = DeploymentSpec("shop", name, script=script, code_dir=home, models=("digits:2",))
        state.put_deployment(spec, create=True)
    state.set_traffic("shop", Traffic({"blue": 100, "green": 0}))
    api = ControlPlaneApp(state, RecordingDeployer(home), TOKEN, "http://127.0.0.1:9", home=home)
    sign_ins = SignIns()
    server = make_server("127.0.0.1", 0, mount(api, ConsoleApp(api, TOKEN, "http://127.0.0.1:9", None, sign_ins)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Console(f"http://127.0.0.1:{server.server_port}", state, home, sign_ins)
    finally:
        server.shutdown()
        thread.join()
        engine.dispose()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def test_every_page_needs_a_session_and_says_where_to_sign_in(console: Console) -> None:
    with httpx.Client(base_url=console.url) as anonymous:
        for page in ("/console/", "/console/endpoints/shop", "/console/models/digits"):
            answer = anonymous.get(page)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/console/signin?next=/console/")
        assert anonymous.post("/console/endpoints/shop/traffic", data={"traffic.blue": "0"}).status_code == 303
        charts = anonymous.get("/console/endpoints/shop/metrics")
        assert charts.status_code == 401
        assert charts.headers["hx-redirect"] == "/console/signin"
        form = anonymous.get("/console/signin")
        assert form.status_code == 200
        assert 'type="password"' in form.text
    assert console.state.endpoint("shop").traffic == {"blue": 100, "green": 0}


def test_the_token_signs_in_with_a_strict_http_only_cookie(console: Console) -> None:
    with httpx.Client(base_url=console.url) as client:
        wrong = client.post("/console/signin", data={"token": "not-it", "next": "/console/models"})
        assert wrong.status_code == 401
        assert "not this control plane" in wrong.text
        assert "scorehost_console" not in wrong.headers.get("set-cookie", "")
        right = client.post("/console/signin", data={"token": TOKEN, "next": "/console/models"})
        assert right.status_code == 303
        assert right.headers["location"] == "/console/models"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/console" in cookie
        assert TOKEN not in cookie
        assert client.get("/console/models").status_code == 200
        away = client.post("/console/signin", data={"token": TOKEN, "next": "https://evil.example/"})
        assert away.headers["location"] == "/console/"  # never to another site


def test_a_sign_in_link_works_once(console: Console) -> None:
    code = console.sign_ins.new_link()
    with httpx.Client(base_url=console.url) as first, httpx.Client(base_url=console.url) as second:
        assert first.get(f"/console/signin/{code}").status_code == 303
        assert first.get("/console/").status_code == 200
        again = second.get(f"/console/signin/{code}")
        assert again.status_code == 200
        assert "used already or has expired" in again.text
        assert second.get("/console/").status_code == 303


def test_links_are_given_only_for_the_control_plane_token(console: Console) -> None:
    assert httpx.post(f"{console.url}/console/links").status_code == 401
    answer = httpx.post(f"{console.url}/console/links", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 201
    assert answer.json()["path"].startswith("/console/signin/")


def test_signing_out_ends_the_session(console: Console) -> None:
    with console.browser() as client:
        token = _csrf(client.get("/console/").text)
        assert client.post("/console/signout", data={"csrf_token": token}).status_code == 303
        assert client.get("/console/").status_code == 303


def test_every_answer_carries_a_strict_content_security_policy(console: Console) -> None:
    with console.browser() as client:
        for page in ("/console/", "/console/signin", "/console/nowhere", "/console/static/console.js"):
            headers = client.get(page).headers
            policy = headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert "default-src 'none'" in policy
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
        page = client.get("/console/endpoints/shop").text
        assert "<script>" not in page
        assert " style=" not in page
        assert "onclick" not in page


def test_a_change_without_the_session_csrf_token_or_from_another_site_is_refused(console: Console) -> None:
    with console.browser() as client:
        token = _csrf(client.get("/console/endpoints/shop").text)
        split = {"traffic.blue": "0", "traffic.green": "100"}
        assert client.post("/console/endpoints/shop/traffic", data=split).status_code == 403
        assert client.post("/console/endpoints/shop/traffic", data={**split, "csrf_token": "x" * 43}).status_code == 403
        cross = client.post(
            "/console/endpoints/shop/traffic",
            data={**split, "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        assert console.state.endpoint("shop").traffic == {"blue": 100, "green": 0}


def test_the_traffic_form_changes_the_split_and_refuses_what_the_api_refuses(console: Console) -> None:
    with console.browser() as client:
        token = _csrf(client.get("/console/endpoints/shop").text)
        bad = client.post(
            "/console/endpoints/shop/traffic",
            data={"csrf_token": token, "traffic.blue": "70", "traffic.green": "20"},
        )
        assert bad.status_code == 400
        assert "100" in bad.text
        assert 'role="alert"' in bad.text
        word = client.post(
            "/console/endpoints/shop/traffic",
            data={"csrf_token": token, "traffic.blue": "seventy", "traffic.green": "30"},
        )
        assert word.status_code == 400
        assert "whole percentage" in word.text
        assert console.state.endpoint("shop").traffic == {"blue": 100, "green": 0}
        mirrored_live = client.post(
            "/console/endpoints/shop/traffic",
            data={
                "csrf_token": token,
                "traffic.blue": "70",
                "traffic.green": "30",
                "mirror": "green",
                "mirror_percent": "10",
            },
        )
        assert mirrored_live.status_code == 400
        assert "a mirror must be a deployment with 0%" in mirrored_live.text
        good = client.post(
            "/console/endpoints/shop/traffic",
            data={
                "csrf_token": token,
                "traffic.blue": "100",
                "traffic.green": "0",
                "mirror": "green",
                "mirror_percent": "10",
            },
        )
        assert good.status_code == 303
        assert good.headers["location"] == "/console/endpoints/shop?changed=traffic"
        record = console.state.endpoint("shop")
        assert record.traffic == {"blue": 100, "green": 0}
        assert (record.mirror, record.mirror_percent) == ("green", 10)
        assert "Traffic updated" in client.get(good.headers["location"]).text
        split = client.post(
            "/console/endpoints/shop/traffic",
            data={"csrf_token": token, "traffic.blue": "70", "traffic.green": "30", "mirror": ""},
        )
        assert split.status_code == 303
        record = console.state.endpoint("shop")
        assert record.traffic == {"blue": 70, "green": 30}
        assert record.mirror is None
        console.state.set_traffic("shop", Traffic({"blue": 100, "green": 0}))


def test_keys_are_masked_copied_on_request_and_regenerated_with_a_post(console: Console) -> None:
    before = console.state.endpoint("shop")
    with console.browser() as client:
        page = client.get("/console/endpoints/shop").text
        assert before.primary_key not in page
        assert before.primary_key[-4:] in page
        assert client.get("/console/endpoints/shop/keys").json()["primary"] == before.primary_key
        token = _csrf(page)
        answer = client.post("/console/endpoints/shop/keys/regenerate", data={"csrf_token": token, "key": "primary"})
        assert answer.status_code == 303
    after = console.state.endpoint("shop")
    assert after.primary_key != before.primary_key
    assert after.secondary_key == before.secondary_key


def test_the_model_page_shows_files_checksums_and_users_and_moves_aliases(console: Console) -> None:
    with console.browser() as client:
        page = client.get("/console/models/digits").text
        with Registry(console.home) as registry:
            digest = registry.files("digits:2")[0].digest
        assert digest in page
        assert "shop/blue" in page
        assert "shop/green" in page
        token = _csrf(page)
        moved = client.post(
            "/console/models/digits/aliases", data={"csrf_token": token, "alias": "production", "version": "1"}
        )
        assert moved.status_code == 303
        with Registry(console.home) as registry:
            assert registry.resolve("digits:production") == ("digits", 1)
        refused = client.post(
            "/console/models/digits/aliases", data={"csrf_token": token, "alias": "production", "version": "9"}
        )
        assert refused.status_code == 404
        assert "digits" in refused.text
        with Registry(console.home) as registry:
            assert registry.resolve("digits:production") == ("digits", 1)


def test_browsing_every_page_changes_nothing(console: Console) -> None:
    def snapshot() -> tuple[object, ...]:
        with Registry(console.home) as registry:
            models = [v.to_json() for v in registry.list_versions()]
        endpoint = console.state.endpoint("shop")
        return (
            endpoint.traffic,
            endpoint.primary_key,
            [d.to_json() for d in console.state.deployments("shop")],
            models,
        )

    before = snapshot()
    with console.browser() as client:
        for page in (
            "/console/",
            "/console/endpoints/shop",
            "/console/models",
            "/console/models/digits",
            "/console/endpoints/shop/metrics",
            "/console/endpoints/shop/keys",
        ):
            assert client.get(page).status_code == 200, page
    assert snapshot() == before


def test_unknown_names_and_paths_are_not_found_and_reach_no_file(console: Console) -> None:
    with console.browser() as client:
        assert client.get("/console/endpoints/nope").status_code == 404
        assert client.get("/console/models/nope").status_code == 404
        for name in ("..%2F..%2Fconfig.py", "LICENSES.md", "app.py", "%2e%2e"):
            assert client.get(f"/console/static/{name}").status_code == 404
        script = client.get("/console/static/htmx.min.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")


def test_the_api_still_answers_beside_the_console(console: Console) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{console.url}/api/v1/endpoints", headers=headers).status_code == 200
    models = httpx.get(f"{console.url}/api/v1/models/digits", headers=headers).json()
    assert [v["version"] for v in models["versions"]] == [2, 1]
    assert models["versions"][0]["used_by"] == ["shop/blue", "shop/green"]
