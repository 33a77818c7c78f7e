"""The console's parts on their own: sessions and links, and the arithmetic behind the charts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from scorehost.console.probe import _example
from scorehost.console.sampler import MetricsSampler, _points, parse_gateway, parse_in_flight, quantile
from scorehost.console.sessions import SignIns
from scorehost.deploy.controlplane.logs import redact
from scorehost.deploy.gateway.metrics import GatewayMetrics


def test_a_link_signs_in_once_and_not_after_it_expires() -> None:
    sign_ins = SignIns(link_seconds=0.2)
    code = sign_ins.new_link()
    assert sign_ins.use_link(code)
    assert not sign_ins.use_link(code)
    late = sign_ins.new_link()
    time.sleep(0.3)
    assert not sign_ins.use_link(late)
    assert not sign_ins.use_link("made-up")


def test_sessions_expire_end_and_check_their_csrf_token() -> None:
    sign_ins = SignIns(session_seconds=0.2)
    cookie, session = sign_ins.start()
    assert sign_ins.session(cookie) == session
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(session.csrf[:-1] + "x")
    assert not session.csrf_matches(None)
    assert sign_ins.session("not-a-cookie") is None
    time.sleep(0.3)
    assert sign_ins.session(cookie) is None
    fresh = SignIns()
    cookie, _ = fresh.start()
    fresh.end(cookie)
    assert fresh.session(cookie) is None


def test_a_sign_in_link_never_reaches_the_log() -> None:
    assert redact("GET /console/signin/Zx_9-aB 303") == "GET /console/signin/[redacted] 303"


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {0.1: 0.0, 0.2: 10.0, float("inf"): 10.0}, 0.15),  # the middle of the one bucket that holds all
        (0.99, {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}, 0.198),
        (0.5, {0.1: 5.0, float("inf"): 10.0}, 0.1),  # past the largest finite bound: that bound
        (0.5, {0.1: 0.0, float("inf"): 0.0}, None),  # no request, no latency
    ],
)
def test_quantiles_are_interpolated_within_buckets(q: float, buckets: dict[float, float], expected: float) -> None:
    found = quantile(q, buckets)
    assert found == pytest.approx(expected) if expected is not None else found is None


def test_rates_and_latency_come_from_the_gateways_own_exposition() -> None:
    metrics = GatewayMetrics()
    metrics.answered("shop", "blue", 200, 0.003)
    metrics.answered("", "", 404, 0.001)  # the gateway's own refusal: on no chart
    before = parse_gateway(metrics.exposition().decode())
    for _ in range(20):
        metrics.answered("shop", "blue", 200, 0.004)
    for _ in range(10):
        metrics.answered("shop", "green", 503, 0.2)
    after = parse_gateway(metrics.exposition().decode())
    points = _points(after, before, 10.0, {("shop", "blue"): 2.0, ("shop", "green"): 1.0})
    assert set(points) == {("shop", "blue"), ("shop", "green"), ("shop", "")}
    blue, green, shop = points[("shop", "blue")], points[("shop", "green")], points[("shop", "")]
    assert blue.rates == {"2xx": pytest.approx(2.0)}
    assert green.rates == {"5xx": pytest.approx(1.0)}
    assert shop.rates == {"2xx": pytest.approx(2.0), "5xx": pytest.approx(1.0)}
    assert 0.0025 < (blue.p50 or 0) <= 0.005
    assert 0.1 < (green.p99 or 0) <= 0.25
    assert shop.in_flight == 3.0


def test_a_restarted_gateway_counts_from_zero_instead_of_going_negative() -> None:
    metrics = GatewayMetrics()
    for _ in range(50):
        metrics.answered("shop", "blue", 200, 0.004)
    before = parse_gateway(metrics.exposition().decode())
    restarted = GatewayMetrics()
    for _ in range(5):
        restarted.answered("shop", "blue", 200, 0.004)
    points = _points(parse_gateway(restarted.exposition().decode()), before, 1.0, {})
    assert points[("shop", "blue")].rates == {"2xx": pytest.approx(5.0)}


def test_in_flight_sums_every_sample_of_the_gauge() -> None:
    text = "# TYPE scorehost_requests_in_flight gauge\nscorehost_requests_in_flight 3.0\n"
    assert parse_in_flight(text) == 3.0
    assert parse_in_flight("# TYPE other gauge\nother 1.0\n") == 0.0


def test_the_sampler_keeps_an_hour_and_answers_columns_for_the_charts() -> None:
    sampler = MetricsSampler("http://127.0.0.1:9", dict, interval=5.0)  # nothing listens: no point is added
    sampler.sample()
    sampler.sample()
    assert sampler.series("shop") == {
        "interval": 5.0,
        "t": [],
        "2xx": [],
        "4xx": [],
        "5xx": [],
        "p50_ms": [],
        "p99_ms": [],
        "in_flight": [],
    }
    assert sampler._points.maxlen == 720


@pytest.mark.parametrize("version", ["2", "3"])
def test_the_test_panel_takes_its_sample_from_a_real_swagger_document(serve: Callable[..., Any], version: str) -> None:
    server = serve("typed_echo.py")
    document = httpx.get(f"{server.url}/swagger.json", params={"version": version}, timeout=30).json()
    assert _example(document)["data"] == [[1.0, 2.0], [-1.0, -0.5]]  # the script's @input_schema sample
    assert _example({"paths": {"/score": {"post": {}}}}) is None  # no sample: the panel offers {"data": []}
