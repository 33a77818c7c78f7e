"""The "Test" panel: one scoring request through the gateway, as a client sends it, and what came back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ProbeResult", "sample_request", "send_probe"]

_SHOWN_BYTES = 64 * 1024  # a page shows this much of a body; the rest is counted
_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: int | None  # None: no answer at all
    headers: list[tuple[str, str]]
    body: str
    body_bytes: int
    milliseconds: float
    error: str | None = None


def send_probe(
    gateway_url: str, endpoint: str, body: str, key: str | None, deployment: str | None = None
) -> ProbeResult:
    """POST `body` to the endpoint's scoring URI on the gateway (with the key, and the deployment header when one
    is chosen), timing the whole exchange."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if deployment:
        headers["azureml-model-deployment"] = deployment
    started = time.perf_counter()
    try:
        answer = httpx.post(
            f"{gateway_url.rstrip('/')}/endpoints/{endpoint}/score",
            content=body.encode(),
            headers=headers,
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError as error:
        elapsed = (time.perf_counter() - started) * 1000
        reason = "timed out" if isinstance(error, httpx.TimeoutException) else "could not reach the gateway"
        return ProbeResult(None, [], "", 0, elapsed, f"{reason} ({type(error).__name__})")
    elapsed = (time.perf_counter() - started) * 1000
    return ProbeResult(answer.status_code, list(answer.headers.items()), _shown(answer), len(answer.content), elapsed)


def _shown(answer: httpx.Response) -> str:
    content = answer.content[:_SHOWN_BYTES]
    if answer.headers.get("content-type", "").startswith("application/json"):
        try:
            return json.dumps(json.loads(answer.content), indent=2)[:_SHOWN_BYTES]
        except ValueError:
            pass
    return content.decode(errors="replace")


def sample_request(gateway_url: str, endpoint: str, key: str | None) -> str:
    """The request body the endpoint's swagger document gives as its example, or `{"data": []}` without one."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        answer = httpx.get(f"{gateway_url.rstrip('/')}/endpoints/{endpoint}/swagger.json", headers=headers, timeout=5)
        document = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        document = {}
    example = _example(document) if isinstance(document, dict) else None
    return json.dumps(example if example is not None else {"data": []}, indent=2)


def _example(document: dict[str, Any]) -> Any:
    """A scoring example from an OpenAPI 3 request body, or a Swagger 2 `ServiceInput` definition."""
    for route, item in (document.get("paths") or {}).items():
        if not str(route).endswith("/score") or not isinstance(item, dict):
            continue
        content = ((item.get("post") or {}).get("requestBody") or {}).get("content") or {}
        media = content.get("application/json") or {}
        if media.get("example") not in (None, {}):
            return media["example"]
    schema = ((document.get("definitions") or {}).get("ServiceInput")) or (
        ((document.get("components") or {}).get("schemas") or {}).get("ServiceInput")
    )
    if isinstance(schema, dict) and schema.get("example") not in (None, {}):
        return schema["example"]
    return None
