"""Settings the workers could not honour, found once before any worker starts.

A worker that fails on a setting fails the same way every time it is restarted: the supervisor would
restart it forever. Each such setting is checked here instead, and `serve` exits 2 with the one line that
names the fix. (Values of the wrong type or out of range never get this far: `ServeSettings` refuses them.)
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from scorehost.config import ServeSettings
from scorehost.errors import ScorehostError
from scorehost.http.cors import CorsPolicy
from scorehost.http.procfs import resident_bytes
from scorehost.telemetry.spans import require_otel

__all__ = ["settings_problem"]


def settings_problem(settings: ServeSettings) -> str | None:
    """Why the workers cannot serve with `settings`, in one line; None when they can."""
    try:
        CorsPolicy.parse(settings.cors_origins)
    except ValueError as error:
        return f"--cors-origins / AML_CORS_ORIGINS: {error}"
    conflict = settings.model_source_conflict()
    if conflict is not None:
        return conflict
    if settings.otlp_endpoint:
        url = urlsplit(settings.otlp_endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            return (
                f"--otlp-endpoint / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {settings.otlp_endpoint!r} is not an "
                "http:// or https:// URL; write the collector's OTLP/HTTP traces URL, e.g. "
                "http://127.0.0.1:4318/v1/traces"
            )
        try:
            require_otel()
        except ScorehostError as error:
            return str(error)
    if settings.max_memory_per_worker is not None and resident_bytes(os.getpid()) is None:
        return "--max-memory-per-worker needs /proc to read the workers' memory (Linux); unset it on this system"
    return None
