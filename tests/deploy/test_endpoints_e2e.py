"""Endpoints end to end: a real control plane, gateway and `scorehost serve` deployments in a workspace.

Create, invoke and delete; 401s; keys rotated while requests flow; a traffic split over 2,000
requests; a rolling update under continuous load with no failed request; a SIGKILLed deployment
restarted; a control-plane restart that finds its deployments again; invalid input → 4xx.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _otlp_receiver import Collector, attributes_of
from _ray_cluster import ray_installed

from scorehost.client import Client, Unauthorized
from scorehost.deploy.controlplane.daemon import start_control_plane, stop_control_plane
from scorehost.errors import InvalidSpec, ResourceExists, RunFailed, ScoringTimeout, UnknownResource
from scorehost.http.pipeline import RUN_FAILED_MESSAGE

WHOAMI = Path(__file__).parents[1] / "scripts" / "whoami"

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    workspace = tmp_path / "home"
    yield workspace
    stop_control_plane(workspace)


def _start(home: Path, gateway_port: int | None = None, otlp_endpoint: str | None = None) -> Client:
    address = start_control_plane(
        home, api_port=0, gateway_port=gateway_port or _free_port(), otlp_endpoint=otlp_endpoint
    )
    return Client(address=address, timeout=30)


def _wait(client: Client, endpoint: str, name: str, generation: int, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        deployment = client.get_deployment(endpoint, name)
        status = deployment["status"]
        if status.get("state") == "ready" and status.get("generation", deployment["generation"]) == generation:
            return deployment
        assert status.get("state") != "failed", status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def _deploy(client: Client, endpoint: str, name: str, *, instances: int = 1, generation: int = 1) -> None:
    client.create_deployment(
        endpoint, name, script="score.py", code_dir=WHOAMI, instances=instances, environment={"DEPLOYMENT_NAME": name}
    )
    _wait(client, endpoint, name, generation)


def _routed(client: Client, endpoint: str, deployment: str, timeout: float = 10) -> None:
    """Wait until the gateway sends traffic to `deployment` (it re-reads the routes within ~0.1 s)."""
    deadline = time.monotonic() + timeout
    key = client.keys(endpoint)["primary"]
    while client.invoke(endpoint, 0, key=key)["deployment"] != deployment:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_create_invoke_and_delete_with_keys(home: Path) -> None:
    with _start(home) as client:
        created = client.create_endpoint("mnist")
        _deploy(client, "mnist", "blue")
        keys = client.keys("mnist")
        assert client.invoke("mnist", [1, 2], key=keys["primary"])["received"] == "[1,2]"
        assert client.invoke("mnist", "x", key=keys["secondary"])["deployment"] == "blue"

        url = created["scoring_uri"]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": keys["primary"]}):
            answer = httpx.post(url, json={"data": 1}, headers=headers)
            assert answer.status_code == 401, answer.text
            assert keys["primary"] not in answer.text
        with pytest.raises(Unauthorized, match="scorehost endpoints keys mnist"):
            client.invoke("mnist", 1, key="wrong")
        with pytest.raises(UnknownResource):
            client.invoke("other", 1)
        gateway_log = (home / "controlplane" / "gateway.log").read_text()
        assert keys["primary"] not in gateway_log
        assert keys["secondary"] not in gateway_log

        client.delete_endpoint("mnist")
        deadline = time.monotonic() + 5
        while (status := httpx.post(url, json={"data": 1}).status_code) != 404:  # once the gateway re-reads
            assert status == 401
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.list_endpoints() == []


def test_the_gateway_and_the_deployments_export_spans(
    home: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--otlp-endpoint is the gateway's; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT reaches the deployments too."""
    trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    from_environment = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", from_environment.url)
    try:
        with _start(home, otlp_endpoint=collector.url) as client:
            client.create_endpoint("mnist", auth="none")
            _deploy(client, "mnist", "blue")
            answer = httpx.post(
                client.get_endpoint("mnist")["scoring_uri"],
                json={"data": 1},
                headers={"traceparent": f"00-{trace}-{caller_span}-01"},
            )
            assert answer.status_code == 200, answer.text
            (ours,) = collector.wait_for(1)
            theirs = next(span for span in from_environment.wait_for(4) if span.name == "POST /score")
    finally:
        from_environment.close()
    assert (ours.name, ours.trace_id.hex(), ours.parent_span_id.hex()) == (
        "POST /endpoints/{endpoint}/score",
        trace,
        caller_span,
    )
    assert attributes_of(ours)["scorehost.deployment"] == "blue"
    assert (theirs.trace_id.hex(), theirs.parent_span_id) == (trace, ours.span_id)
    assert collector.services == {"scorehost-gateway"}  # the flag wins over the variable
    assert from_environment.services == {"ML service"}


def test_keys_rotate_while_requests_flow(home: Path) -> None:
    with _start(home) as client:
        client.create_endpoint("mnist")
        _deploy(client, "mnist", "blue")
        keys = client.keys("mnist")
        failures: list[str] = []
        stop = threading.Event()

        def caller(key: str) -> None:
            with httpx.Client() as http:
                while not stop.is_set():
                    answer = http.post(
                        client.get_endpoint("mnist")["scoring_uri"],
                        json={"data": 1},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text}")

        # Clients on the secondary key keep working while the primary is replaced, and vice versa.
        worker = threading.Thread(target=caller, args=(keys["secondary"],))
        worker.start()
        time.sleep(0.3)
        new_primary = client.regenerate_key("mnist", "primary")["primary"]
        time.sleep(0.3)
        stop.set()
        worker.join()
        assert failures == []
        stop.clear()
        worker = threading.Thread(target=caller, args=(new_primary,))
        worker.start()
        time.sleep(0.3)
        client.regenerate_key("mnist", "secondary")
        time.sleep(0.3)
        stop.set()
        worker.join()
        assert failures == []
        with pytest.raises(Unauthorized):
            client.invoke("mnist", 1, key=keys["primary"])  # the replaced key is refused at once (after reload)


def test_traffic_split_over_2000_requests(home: Path) -> None:
    with _start(home) as client:
        client.create_endpoint("mnist", auth="none")
        _deploy(client, "mnist", "blue")
        _deploy(client, "mnist", "green")
        client.set_traffic("mnist", {"blue": 90, "green": 10})
        time.sleep(0.3)  # the gateway re-reads its routes
        counts: collections.Counter[str] = collections.Counter()
        url = client.get_endpoint("mnist")["scoring_uri"]
        with httpx.Client() as http:
            for _ in range(2000):
                counts[http.post(url, json={"data": 0}).json()["deployment"]] += 1
        # 10% of 2,000 is 200 with a standard deviation of ~13: 4 sigma either way.
        assert 145 <= counts["green"] <= 255, counts
        assert counts["blue"] + counts["green"] == 2000
        # The header picks a deployment whatever the split.
        assert client.invoke("mnist", 0, deployment="green")["deployment"] == "green"


def test_rolling_update_under_load_fails_no_request(home: Path) -> None:
    with _start(home) as client:
        client.create_endpoint("mnist", auth="none")
        _deploy(client, "mnist", "blue")
        url = client.get_endpoint("mnist")["scoring_uri"]
        failures: list[str] = []
        pids: set[int] = set()
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    try:
                        answer = http.post(url, json={"data": 1})
                    except httpx.HTTPError as error:
                        failures.append(repr(error))
                        continue
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text}")
                    else:
                        pids.add(answer.json()["pid"])

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        before = set(pids)
        client.update_deployment("mnist", "blue", instances=2)
        _wait(client, "mnist", "blue", 2)
        time.sleep(1.5)  # the old generation drains and stops while the load goes on
        stop.set()
        for worker in workers:
            worker.join()
        assert failures == []
        assert pids - before, "the new generation never answered"


def test_a_killed_deployment_is_restarted(home: Path) -> None:
    with _start(home) as client:
        client.create_endpoint("mnist", auth="none")
        _deploy(client, "mnist", "blue")
        first = client.invoke("mnist", 0)["pid"]
        os.kill(_serve_pid(client), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = client.invoke("mnist", 0)
                if answer["pid"] != first:
                    break
            except Exception:  # noqa: BLE001 - down while it restarts
                pass
            assert time.monotonic() < deadline, client.get_deployment("mnist", "blue")
            time.sleep(0.2)
        status = client.get_deployment("mnist", "blue")["status"]
        assert status["instances"][0]["restarts"] >= 1
        assert "SIGKILL" in (status["instances"][0]["last_error"] or "")


def _serve_pid(client: Client) -> int:
    """The pid of the deployment's `scorehost serve` process (the supervisor, not a worker)."""
    worker = client.invoke("mnist", 0)["pid"]
    return int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_restarted_control_plane_finds_its_deployments(home: Path) -> None:
    port = _free_port()
    with _start(home, port) as client:
        client.create_endpoint("mnist", auth="none")
        _deploy(client, "mnist", "blue")
        before = client.invoke("mnist", 0)["pid"]
        url = client.get_endpoint("mnist")["scoring_uri"]
    address = json.loads((home / "controlplane" / "address.json").read_text())
    os.kill(address["pid"], signal.SIGKILL)  # a crash: nothing is cleaned up
    time.sleep(0.3)
    assert httpx.post(url, json={"data": 0}).json()["pid"] == before  # the gateway kept serving meanwhile
    with _start(home, port) as client:
        deployment = _wait(client, "mnist", "blue", 1)
        assert client.invoke("mnist", 0)["pid"] == before  # adopted, not restarted
        assert deployment["generation"] == 1


def test_invalid_input_gets_4xx_with_a_message(home: Path) -> None:
    with _start(home) as client:
        client.create_endpoint("mnist")
        with pytest.raises(ResourceExists):
            client.create_endpoint("mnist")
        with pytest.raises(InvalidSpec, match="is not a valid endpoint name"):
            client.create_endpoint("a")
        with pytest.raises(UnknownResource, match="no endpoint named 'nope'"):
            client.create_deployment("nope", "blue", script="score.py", code_dir=WHOAMI)
        with pytest.raises(UnknownResource, match="no model named 'missing'"):
            client.create_deployment("mnist", "blue", script="score.py", code_dir=WHOAMI, models=["missing:1"])
        with pytest.raises(InvalidSpec, match="traffic must sum to 100"):
            client.set_traffic("mnist", {"blue": 50})
        with pytest.raises(InvalidSpec, match="has no deployment 'blue'"):
            client.set_traffic("mnist", {"blue": 100})
        ray = {"address": "127.0.0.1:6379", "min_replicas": 2}
        with pytest.raises(InvalidSpec, match="autoscaling needs both --min-replicas and --max-replicas"):
            client.create_deployment("mnist", "blue", script="score.py", code_dir=WHOAMI, backend="ray", ray=ray)
        assert client.list_deployments("mnist") == []  # nothing refused was stored


@pytest.mark.skipif(ray_installed(), reason="needs an environment without Ray (CI's plain run)")
def test_a_ray_deployment_without_ray_installed_names_the_extra(home: Path) -> None:
    with _start(home) as client:
        client.create_endpoint("mnist")
        ray = {"address": "127.0.0.1:6379"}
        with pytest.raises(
            InvalidSpec, match=r"needs Ray Serve where the control plane runs: pip install 'scorehost\[ray\]'"
        ):
            client.create_deployment("mnist", "blue", script="score.py", code_dir=WHOAMI, backend="ray", ray=ray)
        assert client.list_deployments("mnist") == []


def test_invoke_reports_script_errors_and_timeouts(home: Path) -> None:
    scripts = WHOAMI.parent
    with _start(home) as client:
        client.create_endpoint("mnist", auth="none")
        client.create_deployment("mnist", "broken", script="run_raises.py", code_dir=scripts)
        _wait(client, "mnist", "broken", 1)
        # The caller reads the generic message; what run() raised is in the deployment's log.
        with pytest.raises(RunFailed, match=rf"the entry script failed \(500\): {re.escape(RUN_FAILED_MESSAGE)}$"):
            client.invoke("mnist", 7)
        deadline = time.monotonic() + 10
        while "run() raised ValueError: cannot score 7" not in (log := client.logs("mnist", "broken")):
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
        # A deployment never sends it, whatever it asks for.
        for loud in ({"serve_options": {"debug_errors": True}}, {"environment": {"SCOREHOST_DEBUG_ERRORS": "true"}}):
            with pytest.raises(InvalidSpec, match="debug_errors is for local development"):
                client.create_deployment("mnist", "loud", script="run_raises.py", code_dir=scripts, **loud)
        assert [d["name"] for d in client.list_deployments("mnist")] == ["broken"]
        client.create_deployment("mnist", "sleepy", script="slow.py", code_dir=scripts, serve_options={"timeout": 0.5})
        _wait(client, "mnist", "sleepy", 1)
        with pytest.raises(ScoringTimeout, match="timed out"):
            client.invoke("mnist", 3, deployment="sleepy")
        # init() fails: the deployment is reported failed with the script's error, not restarted forever.
        client.create_deployment("mnist", "doomed", script="init_fails.py", code_dir=scripts)
        deadline = time.monotonic() + 60
        while (status := client.get_deployment("mnist", "doomed")["status"])["state"] != "failed":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert "init" in status["error"]


def test_ready_means_the_gateway_routes_to_it(home: Path) -> None:
    """A deployment reported "ready" is already routed to: a request sent the moment the state says so is answered
    by it, not 503 "sends no traffic" (the state once turned ready before the gateway re-read its routes)."""
    with _start(home) as client:
        client.create_endpoint("mnist", auth="none")
        for name in ("blue", "green", "red"):
            client.create_deployment("mnist", name, script="score.py", code_dir=WHOAMI)
            deadline = time.monotonic() + 60
            while client.get_deployment("mnist", name)["status"]["state"] != "ready":
                assert time.monotonic() < deadline
                time.sleep(0.005)
            assert client.invoke("mnist", 0, deployment=name)["deployment"] == "?"
