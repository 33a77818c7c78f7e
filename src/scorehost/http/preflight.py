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
    if settings.collect_dir is not None:
        problem = _collection_problem(settings)
        if problem is not None:
            return problem
    if settings.max_memory_per_worker is not None and resident_bytes(os.getpid()) is None:
        return "--max-memory-per-worker needs /proc to read the workers' memory (Linux); unset it on this system"
    return None


def _collection_problem(settings: ServeSettings) -> str | None:
    """Why data collection cannot start: settings it refuses, or a folder it cannot write to."""
    from scorehost.http.collecting import collection_settings

    try:
        declared = collection_settings(settings)
    except ScorehostError as error:
        return f"data collection: {error.message}"
    assert declared is not None
    try:
        declared.directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--collect-dir: cannot make {declared.directory} ({error.strerror}); give a folder this user can write"
    if not os.access(declared.directory, os.W_OK | os.X_OK):
        return f"--collect-dir: {declared.directory} is not writable by this user; give a folder it can write"
    return None
