"""What `scorehost serve` logs on its way up: where it binds at once, that it listens only once a worker's init()
succeeded (never when init() fails), the input rule once, and an OTLP export without its credentials."""

from __future__ import annotations

from collections.abc import Callable

from _otlp_receiver import Collector
from conftest import Server

Serve = Callable[..., Server]


def test_a_script_whose_init_fails_never_claims_to_listen(serve: Serve) -> None:
    server = serve("init_fails.py", ready=False)
    assert server.wait_exit(60) == 3
    assert "starting on http://127.0.0.1:" in server.log
    assert "The entry script cannot be served.\ninit() in init_fails.py raised RuntimeError" in server.log
    assert "listening on" not in server.log
    assert "input:" not in server.log


def test_the_start_up_log_in_order_with_an_otlp_export(serve: Serve, collector: Collector) -> None:
    with_credentials = collector.url.replace("http://", "http://scorer:s3cret@") + "?api-key=s3cret"
    server = serve(
        "echo.py",
        "--otlp-endpoint",
        with_credentials,
        env={"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cret"},
    )
    with server.client() as client:
        assert client.post("/score", json={"data": 1}).status_code == 200
    collector.wait_for(4)  # the export works: the exporter has logged no error (that could name the URL)
    server.wait_for_log(r"ready: 1 worker\(s\) serving")
    exporting = (
        f"exporting traces to {collector.url} (its query not logged) over OTLP/HTTP, with the headers of "
        "OTEL_EXPORTER_OTLP_HEADERS (not logged)"
    )
    assert server.log.count(exporting) == 1
    assert "s3cret" not in server.log
    assert server.log.count("input: ") == 1
    lines = [
        next(index for index, line in enumerate(server.lines) if part in line)
        for part in ("exporting traces to", "starting on http://", "input: run() receives", "listening on http://")
    ]
    assert lines == sorted(lines), server.log
