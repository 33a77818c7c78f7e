"""The control plane's REST API (`/api/v1/...`): a WSGI app on Werkzeug's routing.

Admin traffic is a few requests a minute, so the API favours clarity over speed; the data path is
the gateway. Every request carries the workspace's control-plane token (`Authorization: Bearer`),
compared in constant time: binding to 127.0.0.1 keeps other machines out, the token keeps other
local users out. Errors are JSON `{"error": message}` with the status the scorehost error carries.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from scorehost import __version__
from scorehost.deploy.controlplane.following import followed_models
from scorehost.deploy.controlplane.models_api import ModelsApi
from scorehost.deploy.keys import bearer_token, key_matches
from scorehost.deploy.spec import (
    DeploymentSpec,
    EndpointSpec,
    RayOptions,
    Traffic,
    check_environment,
    check_serve_options,
)
from scorehost.deploy.state import DeploymentRecord, DeployState, EndpointRecord
from scorehost.errors import InvalidSpec, ScorehostError
from scorehost.registry.names import parse_ref

__all__ = ["ControlPlaneApp", "Deployer"]

logger = logging.getLogger("scorehost.controlplane")

_MAX_BODY = 1 << 20


class Deployer(Protocol):
    """What the API asks of the controller for changes that start or stop processes."""

    def prepare(self, spec: DeploymentSpec) -> DeploymentSpec: ...

    def deploy(self, record: DeploymentRecord) -> None: ...

    def retire(self, record: DeploymentRecord) -> None: ...

    def status(self, record: DeploymentRecord) -> dict[str, Any]: ...

    def logs(
        self, record: DeploymentRecord, lines: int, follow: bool = False, generation: int | None = None
    ) -> Iterable[str]: ...

    def collected(self, endpoint: str, deployment: str) -> Path: ...

    def routes_changed(self) -> None: ...


_MAP = Map(
    [
        Rule("/api/v1/health", endpoint="health", methods=["GET"]),
        Rule("/api/v1/status", endpoint="status", methods=["GET"]),
        Rule("/api/v1/endpoints", endpoint="list_endpoints", methods=["GET"]),
        Rule("/api/v1/endpoints", endpoint="create_endpoint", methods=["POST"]),
        Rule("/api/v1/endpoints/<name>", endpoint="show_endpoint", methods=["GET"]),
        Rule("/api/v1/endpoints/<name>", endpoint="delete_endpoint", methods=["DELETE"]),
        Rule("/api/v1/endpoints/<name>", endpoint="describe_endpoint", methods=["PATCH"]),
        Rule("/api/v1/endpoints/<name>/keys", endpoint="keys", methods=["GET"]),
        Rule("/api/v1/endpoints/<name>/keys/regenerate", endpoint="regenerate", methods=["POST"]),
        Rule("/api/v1/endpoints/<name>/traffic", endpoint="traffic", methods=["PUT"]),
        Rule("/api/v1/endpoints/<name>/deployments", endpoint="list_deployments", methods=["GET"]),
        Rule("/api/v1/endpoints/<name>/deployments", endpoint="create_deployment", methods=["POST"]),
        Rule("/api/v1/endpoints/<name>/deployments/<deployment>", endpoint="show_deployment", methods=["GET"]),
        Rule("/api/v1/endpoints/<name>/deployments/<deployment>", endpoint="update_deployment", methods=["PUT"]),
        Rule("/api/v1/endpoints/<name>/deployments/<deployment>", endpoint="delete_deployment", methods=["DELETE"]),
        Rule("/api/v1/endpoints/<name>/deployments/<deployment>/logs", endpoint="logs", methods=["GET"]),
        Rule("/api/v1/endpoints/<name>/deployments/<deployment>/data", endpoint="data", methods=["GET"]),
        Rule("/api/v1/models", endpoint="list_models", methods=["GET"]),
        Rule("/api/v1/models/<name>", endpoint="show_model", methods=["GET"]),
        Rule("/api/v1/models/<name>/aliases/<alias>", endpoint="set_alias", methods=["PUT"]),
        Rule("/api/v1/models/<name>/aliases/<alias>", endpoint="remove_alias", methods=["DELETE"]),
        Rule("/openapi.json", endpoint="openapi", methods=["GET"]),
    ],
    strict_slashes=False,
)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, indent=None), status=status, content_type="application/json")


class ControlPlaneApp:
    """The WSGI app: routes requests to the declared state and to the deployer."""

    def __init__(
        self,
        state: DeployState,
        deployer: Deployer,
        token: str,
        gateway_url: str,
        processes: Callable[[], dict[str, Any]] | None = None,
        home: Path | None = None,
    ) -> None:
        self.state = state
        self._home = home  # the workspace, for the registry's routes
        self.deployer = deployer
        self._token = token
        self.gateway_url = gateway_url.rstrip("/")
        self._processes = processes  # what runs: the control plane, its gateway, the deployments

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = _MAX_BODY
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if not key_matches(bearer_token(request.headers.get("Authorization")), [self._token]):
            response = _json(
                {"error": "missing or wrong control-plane token (the workspace's controlplane/token)"}, 401
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        adapter = _MAP.bind_to_environ(request.environ)
        try:
            handler_name, arguments = adapter.match()
            handler: Callable[..., Response] = getattr(self, f"_{handler_name}")
            return handler(request, **arguments)
        except ScorehostError as error:
            return _json({"error": error.message}, error.status_code)
        except NotFound:
            return _json({"error": f"no API route {request.path}; see /openapi.json"}, 404)
        except MethodNotAllowed as error:
            allowed = ", ".join(error.valid_methods or [])
            return _json({"error": f"{request.method} is not allowed on {request.path} (allowed: {allowed})"}, 405)
        except HTTPException as error:
            return _json({"error": error.description or error.name}, error.code or 400)
        except Exception:  # a bug or a broken database: say so, keep serving; the details stay in the log
            logger.exception("%s %s failed", request.method, request.path)
            return _json({"error": "the control plane failed; its log (controlplane/controlplane.log) says why"}, 500)

    # -- helpers -----------------------------------------------------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            data = json.loads(request.get_data(cache=False) or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidSpec(f"the request body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise InvalidSpec("the request body must be a JSON object")
        return data

    def _endpoint_json(self, record: EndpointRecord) -> dict[str, Any]:
        base = f"{self.gateway_url}/endpoints/{record.name}"
        return {
            **record.to_json(),
            "scoring_uri": f"{base}/score",
            "swagger_uri": f"{base}/swagger.json",
            "docs_uri": f"{base}/docs",
        }

    def _deployment_json(self, record: DeploymentRecord) -> dict[str, Any]:
        return {**record.to_json(), "status": self.deployer.status(record)}

    # -- endpoints -----------------------------------------------------------------------------------

    def _health(self, request: Request) -> Response:
        return _json({"status": "ok", "version": __version__})

    def _status(self, request: Request) -> Response:
        return _json(self._processes() if self._processes is not None else {})

    def _list_endpoints(self, request: Request) -> Response:
        return _json([self._endpoint_json(record) for record in self.state.endpoints()])

    def _create_endpoint(self, request: Request) -> Response:
        body = self._body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise InvalidSpec("give the endpoint a 'name'")
        spec = EndpointSpec(
            name,
            auth=body.get("auth", "key"),
            description=str(body.get("description", "")),
            tags=body.get("tags") or {},
        )
        record = self.state.create_endpoint(spec)
        self.deployer.routes_changed()
        return _json(self._endpoint_json(record), 201)

    def _describe_endpoint(self, request: Request, name: str) -> Response:
        body = self._body(request)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidSpec("'description' must be text")
        record = self.state.describe_endpoint(name, description=description, tags=body.get("tags"))
        return _json(self._endpoint_json(record))

    def _show_endpoint(self, request: Request, name: str) -> Response:
        record = self.state.endpoint(name)
        deployments = [self._deployment_json(d) for d in self.state.deployments(name)]
        return _json({**self._endpoint_json(record), "deployments": deployments})

    def _delete_endpoint(self, request: Request, name: str) -> Response:
        for record in self.state.delete_endpoint(name):
            self.deployer.retire(record)
        self.deployer.routes_changed()
        return Response(status=204)

    def _keys(self, request: Request, name: str) -> Response:
        record = self.state.endpoint(name)
        return _json({"primary": record.primary_key, "secondary": record.secondary_key})

    def _regenerate(self, request: Request, name: str) -> Response:
        slot = self._body(request).get("key", "primary")
        record = self.state.regenerate_key(name, slot)
        self.deployer.routes_changed()
        return _json({"primary": record.primary_key, "secondary": record.secondary_key})

    def _traffic(self, request: Request, name: str) -> Response:
        body = self._body(request)
        split = body.get("traffic", {})
        mirror = body.get("mirror") or {}
        if not isinstance(split, dict) or not all(_whole(v) for v in split.values()):
            raise InvalidSpec("'traffic' must map deployment names to whole percentages, e.g. {\"blue\": 90}")
        if not isinstance(mirror, dict):
            raise InvalidSpec('\'mirror\' must be {"deployment": NAME, "percent": N} or null')
        target, percent = mirror.get("deployment"), mirror.get("percent", 0)
        if target is not None and not isinstance(target, str):
            raise InvalidSpec("'mirror.deployment' must be the name of a deployment")
        if not _whole(percent):
            raise InvalidSpec(f"'mirror.percent' must be a whole number between 0 and 100, not {json.dumps(percent)}")
        traffic = Traffic(split, mirror=target, mirror_percent=percent)
        record = self.state.set_traffic(name, traffic)
        self.deployer.routes_changed()
        return _json(self._endpoint_json(record))

    # -- deployments ---------------------------------------------------------------------------------

    def _deployment_spec(self, name: str, deployment: str, body: dict[str, Any]) -> DeploymentSpec:
        for field in ("script", "code_dir"):
            value = body.get(field)
            if not isinstance(value, str) or not value or "\0" in value or len(value) > 4096:
                raise InvalidSpec(f"give the deployment a '{field}' (a path on the control plane's machine)")
        models = body.get("models", [])
        if not isinstance(models, list) or not all(isinstance(ref, str) for ref in models):
            raise InvalidSpec("'models' must be a list of references like [\"sklearn_mnist:1\"]")
        instances = body.get("instances", 1)
        if not _whole(instances):
            raise InvalidSpec("'instances' must be a whole number")
        environment = body.get("environment") or {}
        if not isinstance(environment, dict):
            raise InvalidSpec('\'environment\' must be an object of variables, like {"LOG_LEVEL": "debug"}')
        check_environment(environment)
        backend = body.get("backend") or ("ray" if body.get("ray") else "local")
        if not isinstance(backend, str):
            raise InvalidSpec("'backend' must be 'local' or 'ray'")
        code_dir = Path(body["code_dir"])
        if not _is(code_dir, "dir"):
            raise InvalidSpec(f"the code folder {code_dir} does not exist on the control plane's machine")
        spec = DeploymentSpec(
            endpoint=name,
            name=deployment,
            script=Path(body["script"]),
            code_dir=code_dir,
            models=tuple(models),
            instances=instances,
            environment=environment,
            serve_options=check_serve_options(body.get("serve_options") or {}),
            backend=backend,
            ray=self._ray_options(body.get("ray")),
            python_environment=body.get("python_environment"),
            description=body.get("description") or "",
            tags=body.get("tags") or {},
            azureml=body.get("azureml") or {},
            follow=self._follow(body, models),
        )
        if not _is(spec.script, "file"):
            raise InvalidSpec(f"the entry script {spec.script} does not exist")
        return spec

    @staticmethod
    def _follow(body: dict[str, Any], models: list[str]) -> tuple[str, ...]:
        """`follow_models: true` follows the labels among the declared models; else the stored `follow` list, less
        models no longer deployed."""
        wanted = body.get("follow_models")
        if wanted is not None and not isinstance(wanted, bool):
            raise InvalidSpec("'follow_models' must be true or false")
        if wanted is not None:
            return followed_models(tuple(models)) if wanted else ()
        follow = body.get("follow") or []
        if not isinstance(follow, list) or not all(isinstance(ref, str) for ref in follow):
            raise InvalidSpec("'follow' must be a list of model labels like [\"sklearn_mnist:production\"]")
        names = {parse_ref(ref).name for ref in models}
        return tuple(ref for ref in follow if parse_ref(ref).name in names)

    @staticmethod
    def _ray_options(value: Any) -> RayOptions | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidSpec('\'ray\' must be an object of Ray options, like {"address": "HOST:PORT"}')
        return RayOptions.from_json(value)

    def _list_deployments(self, request: Request, name: str) -> Response:
        return _json([self._deployment_json(record) for record in self.state.deployments(name)])

    def _create_deployment(self, request: Request, name: str) -> Response:
        body = self._body(request)
        deployment = body.get("name")
        if not isinstance(deployment, str):
            raise InvalidSpec("give the deployment a 'name'")
        spec = self.deployer.prepare(self._deployment_spec(name, deployment, body))
        record = self.state.put_deployment(spec, create=True)
        self.deployer.deploy(record)
        return _json(self._deployment_json(record), 201)

    def _show_deployment(self, request: Request, name: str, deployment: str) -> Response:
        return _json(self._deployment_json(self.state.deployment(name, deployment)))

    def _update_deployment(self, request: Request, name: str, deployment: str) -> Response:
        current = self.state.deployment(name, deployment).spec.to_json()
        changes = self._body(request)
        body = {**current, **changes}
        if changes.get("backend") == "local":  # moving off Ray: its options go with it
            body["ray"] = None
        elif isinstance(changes.get("ray"), dict) and current.get("ray"):
            body["ray"] = {**current["ray"], **changes["ray"]}  # a changed option, the others kept
        spec = self.deployer.prepare(self._deployment_spec(name, deployment, body))
        record = self.state.put_deployment(spec, create=False)
        self.deployer.deploy(record)
        return _json(self._deployment_json(record))

    def _delete_deployment(self, request: Request, name: str, deployment: str) -> Response:
        record = self.state.delete_deployment(name, deployment)
        self.deployer.retire(record)
        self.deployer.routes_changed()
        return Response(status=204)

    def _logs(self, request: Request, name: str, deployment: str) -> Response:
        lines = request.args.get("lines", "100")
        if not re.fullmatch(r"[0-9]{1,6}", lines):
            raise InvalidSpec("'lines' must be a whole number up to 999999")
        follow = request.args.get("follow", "false").lower() in ("1", "true", "yes")
        generation = request.args.get("generation")
        if generation is not None and not re.fullmatch(r"[0-9]{1,9}", generation):
            raise InvalidSpec("'generation' must be a generation number, as `deployments show` lists them")
        record = self.state.deployment(name, deployment)
        found = self.deployer.logs(record, int(lines), follow, generation=int(generation) if generation else None)
        lines_out = (line if line.endswith("\n") else line + "\n" for line in found)
        if follow:  # streamed as the lines come, until the deployment stops or the caller hangs up
            return Response((line.encode() for line in lines_out), content_type="text/plain; charset=utf-8")
        return Response("".join(lines_out), content_type="text/plain; charset=utf-8")

    def _data(self, request: Request, name: str, deployment: str) -> Response:
        """The deployment's collected rows as JSON lines, oldest first; also after the deployment was deleted."""
        from scorehost.collection.reader import iter_lines

        folder = self.deployer.collected(name, deployment)
        if not folder.is_dir():
            self.state.deployment(name, deployment)  # 404 for a deployment that never was
        collections = request.args.getlist("collection")
        for collection in collections:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", collection) or collection.strip(".") == "":
                raise InvalidSpec(f"{collection!r} is not a collection name (letters, digits, '_', '-' and '.')")
        since, until = _instant(request.args.get("since"), "since"), _instant(request.args.get("until"), "until")
        lines = iter_lines(folder, collections=collections or None, since=since, until=until)
        return Response(lines, content_type="application/x-ndjson")

    # -- models --------------------------------------------------------------------------------------

    def _models(self) -> ModelsApi:
        if self._home is None:
            raise NotFound()
        return ModelsApi(self._home, self.state)

    def _list_models(self, request: Request) -> Response:
        return _json(self._models().summaries())

    def _show_model(self, request: Request, name: str) -> Response:
        return _json(self._models().show(name))

    def _set_alias(self, request: Request, name: str, alias: str) -> Response:
        return _json(self._models().set_alias(name, alias, self._body(request)))

    def _remove_alias(self, request: Request, name: str, alias: str) -> Response:
        self._models().remove_alias(name, alias)
        return Response(status=204)

    def _openapi(self, request: Request) -> Response:
        from scorehost.deploy.controlplane.openapi import document

        return _json(document())


def _instant(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time from a query (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidSpec(f"{name!r} must be an ISO 8601 time, like 2026-12-07T10:00:00Z") from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _whole(value: Any) -> bool:
    """A JSON whole number (true and false are not numbers here, though Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is(path: Path, kind: str) -> bool:
    """Whether `path` is a folder ("dir") or a file; False for a path the system refuses (too long, say)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False
