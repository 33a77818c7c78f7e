"""Payload logging for one worker: the `request` and `response` collections, and each scoring request's mark.

`begin` gives a scoring request its mark (its id and sampling draw) before run() is called on the same thread,
so the script's `Collector` joins its rows to the request; `finish` queues the request's and the answer's
payloads, with the headers the settings name, once the answer is complete. Both only append to the writer's
queue: encoding and writing happen on the writer's thread.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING

from scorehost.collection.rows import PayloadRow
from scorehost.collection.session import Collection, activate, current_request, new_mark
from scorehost.collection.settings import CollectionRule, CollectionSettings
from scorehost.collection.writer import CollectionWriter
from scorehost.config import ServeSettings
from scorehost.errors import InvalidSpec

if TYPE_CHECKING:
    from scorehost.http.metrics import ServerMetrics
    from scorehost.http.pipeline import Body, Exchange, Headers

__all__ = ["PayloadCollection", "collection_for", "collection_settings", "describe"]

logger = logging.getLogger("scorehost.collection")


def collection_settings(settings: ServeSettings) -> CollectionSettings | None:
    """The data collection `scorehost serve` was asked for (`--collect-dir` and friends); None when it is off."""
    if settings.collect_dir is None:
        return None
    rules: dict[str, CollectionRule] = {}
    for item in settings.collect:
        name, _, rate = item.partition("=")
        try:
            rules[name.strip()] = CollectionRule(sampling_rate=float(rate) if rate else 1.0)
        except ValueError:
            raise InvalidSpec(f"--collect {item}: the rate after '=' must be a number from 0 to 1") from None
    models = settings.collect_model_version or ",".join(settings.models) or "default"
    return CollectionSettings(
        directory=settings.collect_dir,
        collections=rules,
        sampling_rate=settings.collect_sampling_rate,
        capture_headers=settings.collect_headers,
        rolling_rate=settings.collect_rolling_rate,
        max_payload_bytes=settings.collect_max_payload,
        max_age_seconds=settings.collect_max_age or None,
        max_bytes=settings.collect_max_size or None,
        sync_seconds=settings.collect_sync_interval,
        source=settings.collect_source or f"/serve/{socket.gethostname()}",
        model_version=models,
        deployment_version=settings.collect_deployment_version,
    )


def describe(settings: CollectionSettings) -> str:
    """`request, response and every collection the script uses -> /data (all requests; Hour files; ...)`."""
    if settings.collections:
        names = ", ".join(
            name if rule.sampling_rate == 1 else f"{name} ({rule.sampling_rate:g})"
            for name, rule in settings.collections.items()
            if rule.enabled
        )
    else:
        names = "request, response and every collection the script uses"
    age = f"{settings.max_age_seconds / 86400:g} days" if settings.max_age_seconds else "forever"
    size = f"at most {settings.max_bytes / 1024**3:g} GiB" if settings.max_bytes else "no size cap"
    return (
        f"{names} -> {settings.directory} (sampling {settings.sampling_rate:g}, a folder per {settings.rolling_rate}, "
        f"kept {age}, {size})"
    )


def collection_for(settings: ServeSettings, metrics: ServerMetrics | None) -> PayloadCollection | None:
    """Start this process's collection (its writer thread) and make it the one scripts' collectors use."""
    declared = collection_settings(settings)
    if declared is None:
        return None
    on_written = on_dropped = None
    if metrics is not None:
        collected, dropped = metrics.collected, metrics.collection_dropped

        def on_written(collection: str, count: int) -> None:
            collected.labels(collection).inc(count)

        def on_dropped(collection: str, reason: str, count: int) -> None:
            dropped.labels(collection, reason).inc(count)

    collection = Collection(declared, CollectionWriter(declared, on_written=on_written, on_dropped=on_dropped))
    activate(collection)
    return PayloadCollection(collection)


class PayloadCollection:
    """What the pipeline calls when data collection is on."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.request_rate = collection.rate("request")
        self.response_rate = collection.rate("response")
        names = collection.settings.capture_header_names()
        self._request_keys = [(name, _environ_key(name)) for name in names]
        self._response_names = frozenset(names)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (within `timeout`) and stop the writer."""
        self.collection.close(timeout)

    def begin(self, exchange: Exchange) -> None:
        mark = exchange.collect = new_mark(exchange.id)
        current_request.set(mark)

    def finish(self, exchange: Exchange, status: int, headers: Headers, body: Body) -> None:
        mark, request = exchange.collect, exchange.request
        if mark is None or request is None:  # refused before its body was read: nothing of it to log
            return
        draw = mark.draw
        wants_request, wants_response = draw < self.request_rate, draw < self.response_rate
        if not (wants_request or wants_response):
            return
        now = time.time()
        environ = exchange.environ
        query = environ.get("QUERY_STRING")
        path = f"{exchange.path}?{query}" if query else exchange.path
        offer = self.collection.offer
        if wants_request:
            captured = {name: environ[key] for name, key in self._request_keys if key in environ}
            offer(
                PayloadRow("request", now, mark.id, request.body, request.content_type, captured, path, exchange.method)
            )
        if wants_response:
            content_type = next((value for name, value in headers if name.lower() == "content-type"), "")
            names = self._response_names
            answered = {name.lower(): value for name, value in headers if name.lower() in names} if names else None
            payload = body if isinstance(body, bytes) else b""  # a streamed answer is not held back to be logged
            offer(
                PayloadRow(
                    "response", now, mark.id, payload, content_type, answered, path, exchange.method, status=status
                )
            )


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
