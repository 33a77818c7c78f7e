"""`scorehost gateway`: serve the workspace's endpoints on one port (the control plane starts it for you)."""

from __future__ import annotations

from pathlib import Path

import click

from scorehost.cli.help_text import SIZE, examples
from scorehost.cli.workspace import home_option, workspace_of

__all__ = ["gateway_command"]


@click.command(
    "gateway",
    hidden=True,
    epilog=examples(
        "scorehost gateway --port 8080 --workers 4 --max-body-size 20MiB",
        note="The control plane runs it for you (`scorehost controlplane start --gateway-port`); run it yourself "
        "only to serve the workspace's endpoints without one.",
    ),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 exposes it.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a request may take through the gateway, the deployment's answer included; then 504.",
)
@click.option(
    "--max-body-size",
    default="100MiB",
    show_default=True,
    type=SIZE,
    help="Largest request body, e.g. 100MiB or 10MB; larger gets 413.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds from a request's first byte to its last header; then 408 and closed.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a request body may go without a byte (or wait for --max-buffered); then 408 (503) and closed.",
)
@click.option(
    "--idle-timeout",
    default=75.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a keep-alive connection may wait for its next request; then closed.",
)
@click.option(
    "--max-connections",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open client connections per worker; new ones past it are closed at once (and logged).",
)
@click.option(
    "--max-buffered",
    type=SIZE,
    help="Request bodies a worker holds at once, e.g. 256MiB; larger bodies wait their turn.  "
    "[default: 256MiB, or --max-body-size if larger]",
)
@home_option
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    envvar="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    help="Send the span of each request it forwards (the parent of the deployment's) to this OTLP/HTTP traces "
    "URL, e.g. http://127.0.0.1:4318/v1/traces; needs pip install 'scorehost[otel]'. "
    "Also OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.  [default: none, no spans]",
)
def gateway_command(
    host: str,
    port: int,
    workers: int,
    timeout: float,
    max_body_size: int,
    header_timeout: float,
    body_timeout: float,
    idle_timeout: float,
    max_connections: int,
    max_buffered: int | None,
    home: Path | None,
    otlp_endpoint: str | None,
) -> None:
    """Route /endpoints/<name>/score to deployments, as <home>/gateway/routes.json says."""
    from scorehost.deploy.gateway import Limits, serve_gateway
    from scorehost.errors import ScorehostError
    from scorehost.telemetry.logs import configure_logging

    try:
        limits = Limits(max_body_size, header_timeout, body_timeout, idle_timeout, max_connections, max_buffered)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    configure_logging()
    workspace = workspace_of(home)
    try:
        serve_gateway(workspace, host, port, workers, timeout=timeout, limits=limits, otlp_endpoint=otlp_endpoint)
    except ScorehostError as error:  # the port is taken, or not ours to bind
        raise click.ClickException(error.message) from None
