"""Build one host's HTTP app from its settings: the same for a `scorehost serve` worker and a Ray Serve replica.

It sits beside the app, not in the worker, so that a replica builds its app without importing granian.
"""

from __future__ import annotations

from collections.abc import Callable

from scorehost.config import ServeSettings
from scorehost.host.entry import EntryScript
from scorehost.http.app import ScoringApp
from scorehost.http.body_watch import BodyWatch
from scorehost.http.collecting import collection_for
from scorehost.http.docs_page import DocsPage
from scorehost.http.gate import RunGate
from scorehost.http.metrics import ServerMetrics
from scorehost.schema.swagger import SwaggerDocs
from scorehost.telemetry.logs import AccessLog
from scorehost.telemetry.spans import SpanExporter

__all__ = ["run_gate_for", "scoring_app_for", "swagger_for"]


def run_gate_for(settings: ServeSettings, on_stuck: Callable[[str], None]) -> RunGate:
    """The gate of one host: `settings.threads` run() calls at once, each under the request deadline."""
    # Long enough for a C call that overran its deadline to return and be answered with the timeout.
    grace = min(max(5.0, settings.request_timeout), 30.0)
    # A job that starts while the watchdog sleeps has a whole timeout ahead of it: ticks of a twentieth of
    # the timeout (at most a second) still catch every deadline on time, with few wake-ups.
    tick = min(1.0, max(0.01, settings.request_timeout / 20))
    return RunGate(
        settings.threads, stuck_grace=grace, on_stuck=on_stuck, tick=tick, max_queue_wait=settings.max_queue_wait
    )


def scoring_app_for(settings: ServeSettings, gate: RunGate, access_log: AccessLog) -> ScoringApp:
    """The HTTP surface of one host (a worker process, or a Ray Serve replica), as `settings` describe it."""
    metrics = ServerMetrics() if settings.metrics else None
    return ScoringApp(
        gate,
        timeout=settings.request_timeout,
        max_body_size=settings.max_body_size,
        access_log=access_log,
        cors_origins=settings.cors_origins,
        docs=DocsPage(title=settings.service_name),
        swagger=lambda loaded: swagger_for(settings, loaded),
        batch_size=settings.max_batch_size,
        batch_wait_ms=settings.max_batch_wait_ms,
        metrics=metrics,
        spans=SpanExporter(settings.otlp_endpoint, settings.service_name) if settings.otlp_endpoint else None,
        debug_errors=settings.debug_errors,
        nan_as_null=settings.nan_as_null,
        body_watch=BodyWatch(settings.body_timeout),
        collection=collection_for(settings, metrics),
    )


def swagger_for(settings: ServeSettings, script: EntryScript) -> SwaggerDocs:
    """The API documents of `script`, made once when the worker starts serving it."""
    return SwaggerDocs(
        run_function=script.run_function,
        mode=script.mode.value,
        app_root=settings.app_root or script.path.parent,
        service_name=settings.service_name,
        service_version=settings.service_version,
        path_prefix=settings.service_path_prefix,
    )
