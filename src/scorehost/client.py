"""`Client` and `AsyncClient`: the control plane and the gateway from Python (the CLI uses them too).

```python
from scorehost import Client

with Client() as client:                 # finds the workspace's control plane (SCOREHOST_HOME)
    client.create_endpoint("mnist")
    client.create_deployment("mnist", "blue", script="score.py", code_dir=".", models=["sklearn_mnist:1"])
    client.invoke("mnist", [[0.0] * 64])
```

Every failure is a scorehost error with a message that names the fix: `Unauthorized` (401),
`UnknownResource` (404), `InvalidSpec` (400), `ResourceExists` (409), `ScoringTimeout` (504),
`RunFailed` (the script raised: its message), `ServiceUnavailable` (nothing ready, or unreachable).

Records come back as the API's JSON: times (`created_at`, `updated_at`, `started_at`) are ISO 8601 UTC text,
e.g. `"2026-12-07T14:03:11.437Z"` (`scorehost.timestamps.parse_iso_utc` turns one into Unix seconds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from scorehost.config import WorkspaceSettings
from scorehost.errors import (
    DeployError,
    InvalidSpec,
    ResourceExists,
    RunFailed,
    ScorehostError,
    ScoringTimeout,
    ServiceUnavailable,
    UnknownResource,
)

__all__ = ["AsyncClient", "Client", "ControlPlaneAddress", "Unauthorized"]


class Unauthorized(DeployError):
    """401: a missing or wrong key (endpoint) or token (control plane)."""

    status_code = 401


@dataclass(frozen=True, slots=True)
class ControlPlaneAddress:
    """Where a workspace's control plane and gateway listen, and the token the API wants."""

    api: str
    gateway: str
    token: str

    @classmethod
    def of(cls, home: str | os.PathLike[str] | None = None) -> ControlPlaneAddress:
        """Read from `<home>/controlplane/` (written by `scorehost controlplane start`)."""
        settings = WorkspaceSettings() if home is None else WorkspaceSettings(home=Path(home))
        folder = settings.workspace / "controlplane"
        try:
            address = json.loads((folder / "address.json").read_text())
            token = (folder / "token").read_text().strip()
        except (OSError, ValueError):
            raise ServiceUnavailable(
                f"no control plane is running for the workspace {settings.workspace}; "
                "start it with `scorehost controlplane start`"
            ) from None
        return cls(api=address["api"], gateway=address["gateway"], token=token)


_API_ERRORS: dict[int, type[ScorehostError]] = {
    400: InvalidSpec,
    401: Unauthorized,
    404: UnknownResource,
    409: ResourceExists,
}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        for field in ("error", "message"):
            if isinstance(text := body.get(field), str):
                return text
    return response.text.strip()


def _api_result(response: httpx.Response) -> Any:
    if response.status_code < 400:
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None
    error = _API_ERRORS.get(response.status_code, DeployError)
    raise error(_message(response))


def _scoring_result(endpoint: str, response: httpx.Response) -> Any:
    status = response.status_code
    if status < 400:
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text
    message = _message(response)
    if status == 401:
        raise Unauthorized(f"{endpoint}: {message}. Get the keys with `scorehost endpoints keys {endpoint}`")
    if status == 404:
        raise UnknownResource(f"{endpoint}: {message}")
    if status == 504:
        raise ScoringTimeout(f"{endpoint}: the request timed out ({message})")
    if status in (502, 503):
        raise ServiceUnavailable(f"{endpoint}: {message}")
    if 400 <= status < 500:
        error = InvalidSpec(f"{endpoint} refused the request ({status}): {message}")
        error.status_code = status
        raise error
    raise RunFailed(f"{endpoint}: the entry script failed ({status}): {message}")


def _gateway_failure(endpoint: str, error: httpx.TransportError, timeout: float | None, gateway: str) -> ScorehostError:
    if isinstance(error, httpx.TimeoutException):
        return ScoringTimeout(f"{endpoint}: no answer within {timeout} s")
    return ServiceUnavailable(f"the gateway at {gateway} does not answer ({error})")


def _scoring_request(
    endpoint: str,
    data: Any,
    body: Mapping[str, Any] | None,
    key: str | None,
    deployment: str | None,
) -> tuple[str, dict[str, str], bytes]:
    payload = dict(body) if body is not None else {"data": data}
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if deployment:
        headers["azureml-model-deployment"] = deployment
    return f"/endpoints/{endpoint}/score", headers, json.dumps(payload).encode()


def _deployment_body(
    name: str | None,
    script: str | os.PathLike[str] | None,
    code_dir: str | os.PathLike[str] | None,
    models: Sequence[str] | None,
    instances: int | None,
    environment: Mapping[str, str] | None,
    serve_options: Mapping[str, Any] | None,
    backend: str | None = None,
    ray: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = dict(extra or {})
    if name is not None:
        body["name"] = name
    if code_dir is not None:
        body["code_dir"] = str(Path(code_dir).resolve())
    if script is not None:
        script_path = Path(script)
        body["script"] = str(script_path.resolve()) if code_dir is None else str(script_path)
    if models is not None:
        body["models"] = list(models)
    if instances is not None:
        body["instances"] = instances
    if environment is not None:
        body["environment"] = dict(environment)
    if serve_options is not None:
        body["serve_options"] = dict(serve_options)
    if backend is not None:
        body["backend"] = backend
    if ray is not None:
        body["ray"] = dict(ray)
    return body


class _Calls:
    """The API's requests as (method, path, json) triples, shared by the sync and async clients."""

    @staticmethod
    def traffic(split: Mapping[str, int], mirror: str | None, mirror_percent: int) -> dict[str, Any]:
        return {
            "traffic": dict(split),
            "mirror": {"deployment": mirror, "percent": mirror_percent} if mirror else None,
        }


class Client:
    """Synchronous client of one workspace's control plane and gateway."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        address: ControlPlaneAddress | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.address = address or ControlPlaneAddress.of(home)
        auth = {"Authorization": f"Bearer {self.address.token}"}
        tls = httpx.create_ssl_context()  # one for both: loading the CA certificates costs a twentieth of a second
        self._api = httpx.Client(base_url=self.address.api, headers=auth, timeout=timeout, verify=tls)
        self._gateway = httpx.Client(base_url=self.address.gateway, timeout=timeout, verify=tls)

    def close(self) -> None:
        self._api.close()
        self._gateway.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        try:
            response = self._api.request(method, path, json=body, params=params or None)
        except httpx.TransportError as error:
            raise ServiceUnavailable(
                f"the control plane at {self.address.api} does not answer ({error}); "
                "`scorehost controlplane status` says why"
            ) from None
        return _api_result(response)

    def console_link(self) -> str:
        """A one-time sign-in link to the web console (good once, for two minutes)."""
        return self.address.api + str(self._call("POST", "/console/links")["path"])

    def status(self) -> dict[str, Any]:
        """Every process the control plane owns: itself, its gateway and each deployment generation (pid, alive,
        state, restarts, last cause)."""
        return dict(self._call("GET", "/api/v1/status"))

    # endpoints
    def list_endpoints(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/endpoints"))

    def create_endpoint(
        self, name: str, *, auth: str = "key", description: str = "", tags: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "auth": auth, "description": description, "tags": dict(tags or {})}
        return dict(self._call("POST", "/api/v1/endpoints", body))

    def describe_endpoint(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Change an endpoint's description or tags (what is None stays)."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        return dict(self._call("PATCH", f"/api/v1/endpoints/{name}", body))

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/endpoints/{name}"))

    def delete_endpoint(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/endpoints/{name}")

    def keys(self, name: str) -> dict[str, str]:
        return dict(self._call("GET", f"/api/v1/endpoints/{name}/keys"))

    def regenerate_key(self, name: str, slot: str = "primary") -> dict[str, str]:
        return dict(self._call("POST", f"/api/v1/endpoints/{name}/keys/regenerate", {"key": slot}))

    def set_traffic(
        self, name: str, split: Mapping[str, int], *, mirror: str | None = None, mirror_percent: int = 0
    ) -> dict[str, Any]:
        body = _Calls.traffic(split, mirror, mirror_percent)
        return dict(self._call("PUT", f"/api/v1/endpoints/{name}/traffic", body))

    # deployments
    def create_deployment(
        self,
        endpoint: str,
        name: str,
        *,
        script: str | os.PathLike[str],
        code_dir: str | os.PathLike[str] = ".",
        models: Sequence[str] = (),
        instances: int = 1,
        environment: Mapping[str, str] | None = None,
        serve_options: Mapping[str, Any] | None = None,
        backend: str = "local",
        ray: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Create and start a deployment. `backend="ray"` runs it on a Ray cluster; `ray` holds `RayOptions`
        fields (`address` at least: HOST:PORT of the cluster's head). `extra` holds the other fields of the API's
        NewDeployment (`python_environment`, `description`, `tags`, `azureml`)."""
        body = _deployment_body(
            name, script, code_dir, models, instances, environment, serve_options, backend, ray, extra
        )
        return dict(self._call("POST", f"/api/v1/endpoints/{endpoint}/deployments", body))

    def update_deployment(
        self,
        endpoint: str,
        name: str,
        *,
        script: str | os.PathLike[str] | None = None,
        code_dir: str | os.PathLike[str] | None = None,
        models: Sequence[str] | None = None,
        instances: int | None = None,
        environment: Mapping[str, str] | None = None,
        serve_options: Mapping[str, Any] | None = None,
        backend: str | None = None,
        ray: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Roll out a new generation with what is given changed; `ray` options are merged into the current ones.
        `extra`: other fields of the API's DeploymentChange (`python_environment`, `description`, `tags`, ...)."""
        body = _deployment_body(
            None, script, code_dir, models, instances, environment, serve_options, backend, ray, extra
        )
        return dict(self._call("PUT", f"/api/v1/endpoints/{endpoint}/deployments/{name}", body))

    def get_deployment(self, endpoint: str, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/endpoints/{endpoint}/deployments/{name}"))

    def list_deployments(self, endpoint: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/v1/endpoints/{endpoint}/deployments"))

    def delete_deployment(self, endpoint: str, name: str) -> None:
        self._call("DELETE", f"/api/v1/endpoints/{endpoint}/deployments/{name}")

    def follow_logs(self, endpoint: str, name: str, *, lines: int = 10, generation: int | None = None) -> Iterator[str]:
        """The last `lines` log lines, then each new one as it is written (until the deployment stops); of
        `generation` when given (else of the one being started, or the serving one)."""
        path = f"/api/v1/endpoints/{endpoint}/deployments/{name}/logs"
        params: dict[str, Any] = {"lines": lines, "follow": "true"}
        if generation is not None:
            params["generation"] = generation
        try:
            with self._api.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    _api_result(response)
                yield from response.iter_lines()
        except httpx.TransportError as error:
            raise ServiceUnavailable(f"the control plane at {self.address.api} does not answer ({error})") from None

    def logs(self, endpoint: str, name: str, *, lines: int = 100, generation: int | None = None) -> str:
        """The last `lines` log lines, of `generation` when given (serving, starting, or the last that failed)."""
        params: dict[str, Any] = {"lines": lines} if generation is None else {"lines": lines, "generation": generation}
        try:
            response = self._api.get(f"/api/v1/endpoints/{endpoint}/deployments/{name}/logs", params=params)
        except httpx.TransportError as error:
            raise ServiceUnavailable(f"the control plane at {self.address.api} does not answer ({error})") from None
        if response.status_code >= 400:
            _api_result(response)
        return response.text

    def deployment_data(
        self,
        endpoint: str,
        name: str,
        *,
        collections: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[bytes]:
        """The deployment's collected rows (docs/data-collection.md), one JSON line each, oldest first, as they
        are read: a large collection is never held whole."""
        params: list[tuple[str, str | int | float | bool | None]] = [("collection", name) for name in collections]
        params += [(key, value.isoformat()) for key, value in (("since", since), ("until", until)) if value]
        path = f"/api/v1/endpoints/{endpoint}/deployments/{name}/data"
        try:
            with self._api.stream("GET", path, params=params, timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.status_code >= 400:
                    response.read()
                    _api_result(response)
                for line in response.iter_lines():
                    if line:
                        yield line.encode()
        except httpx.TransportError as error:
            raise ServiceUnavailable(f"the control plane at {self.address.api} does not answer ({error})") from None

    # scoring
    def invoke(
        self,
        endpoint: str,
        data: Any = None,
        *,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
        deployment: str | None = None,
    ) -> Any:
        """POST to the endpoint's scoring URI: `{"data": data}`, or `body` as given; returns the answer."""
        path, headers, content = _scoring_request(endpoint, data, body, key, deployment)
        try:
            response = self._gateway.post(path, content=content, headers=headers)
        except httpx.TransportError as error:
            raise _gateway_failure(endpoint, error, self._gateway.timeout.read, self.address.gateway) from None
        return _scoring_result(endpoint, response)


class AsyncClient:
    """The same as `Client`, for asyncio code (the calls most used from services)."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        address: ControlPlaneAddress | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.address = address or ControlPlaneAddress.of(home)
        auth = {"Authorization": f"Bearer {self.address.token}"}
        tls = httpx.create_ssl_context()  # one for both, as in Client
        self._api = httpx.AsyncClient(base_url=self.address.api, headers=auth, timeout=timeout, verify=tls)
        self._gateway = httpx.AsyncClient(base_url=self.address.gateway, timeout=timeout, verify=tls)

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._gateway.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._api.request(method, path, json=body)
        except httpx.TransportError as error:
            raise ServiceUnavailable(f"the control plane at {self.address.api} does not answer ({error})") from None
        return _api_result(response)

    async def list_endpoints(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/api/v1/endpoints"))

    async def get_endpoint(self, name: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/api/v1/endpoints/{name}"))

    async def keys(self, name: str) -> dict[str, str]:
        return dict(await self._call("GET", f"/api/v1/endpoints/{name}/keys"))

    async def set_traffic(
        self, name: str, split: Mapping[str, int], *, mirror: str | None = None, mirror_percent: int = 0
    ) -> dict[str, Any]:
        body = _Calls.traffic(split, mirror, mirror_percent)
        return dict(await self._call("PUT", f"/api/v1/endpoints/{name}/traffic", body))

    async def get_deployment(self, endpoint: str, name: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/api/v1/endpoints/{endpoint}/deployments/{name}"))

    async def invoke(
        self,
        endpoint: str,
        data: Any = None,
        *,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
        deployment: str | None = None,
    ) -> Any:
        """POST to the endpoint's scoring URI, as `Client.invoke`."""
        path, headers, content = _scoring_request(endpoint, data, body, key, deployment)
        try:
            response = await self._gateway.post(path, content=content, headers=headers)
        except httpx.TransportError as error:
            raise _gateway_failure(endpoint, error, self._gateway.timeout.read, self.address.gateway) from None
        return _scoring_result(endpoint, response)
