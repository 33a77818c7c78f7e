"""`scorehost gateway`: serve the workspace's endpoints on one port (the control plane starts it for you)."""

from __future__ import annotations

from pathlib import Path

import click

from scorehost.config import WorkspaceSettings

__all__ = ["gateway_command"]


@click.command("gateway", hidden=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 exposes it.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0.001), help="Seconds.")
@click.option(
    "--max-body-size", default=100 * 1024 * 1024, show_default=True, type=click.IntRange(min=0), help="Bytes."
)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Workspace (SCOREHOST_HOME).")
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
    home: Path | None,
    otlp_endpoint: str | None,
) -> None:
    """Route /endpoints/<name>/score to deployments, as <home>/gateway/routes.json says."""
    from scorehost.deploy.gateway import serve_gateway
    from scorehost.errors import ScorehostError
    from scorehost.telemetry.logs import configure_logging

    configure_logging()
    workspace = WorkspaceSettings(home=home).workspace if home else WorkspaceSettings().workspace
    try:
        serve_gateway(
            workspace, host, port, workers, timeout=timeout, max_body_size=max_body_size, otlp_endpoint=otlp_endpoint
        )
    except ScorehostError as error:  # the port is taken, or not ours to bind
        raise click.ClickException(error.message) from None
