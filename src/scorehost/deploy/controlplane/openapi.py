"""The control plane API's OpenAPI 3.1 document, served at `/openapi.json` (validated in the tests)."""

from __future__ import annotations

from typing import Any

from scorehost import __version__

__all__ = ["document"]

_NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$"}
_ERROR = {"$ref": "#/components/responses/Error"}
# Every time in the API: ISO 8601 in UTC, to the millisecond (scorehost.timestamps)
_TIME = {"type": "string", "format": "date-time", "examples": ["2026-12-07T14:03:11.437Z"]}


def _ok(schema: dict[str, Any], description: str = "OK", status: str = "200") -> dict[str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": _ERROR,
        "401": _ERROR,
        "404": _ERROR,
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _NAME}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def document() -> dict[str, Any]:
    """The whole API description."""
    endpoint_params = [_param("name")]
    deployment_params = [_param("name"), _param("deployment")]
    no_content = {"204": {"description": "Done"}, "401": _ERROR, "404": _ERROR, "400": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scorehost control plane",
            "version": __version__,
            "description": "Endpoints (stable scoring URIs with keys) and their deployments. Every request needs "
            "`Authorization: Bearer <token>`, the token in the workspace's controlplane/token file.",
        },
        "security": [{"token": []}],
        "paths": {
            "/api/v1/health": {"get": {"summary": "Liveness and version", "responses": _ok(_ref("Health"))}},
            "/api/v1/status": {
                "get": {
                    "summary": "Every process the control plane owns: itself, the gateway, each deployment's "
                    "generations (pid, alive, state, restarts, last cause)",
                    "responses": _ok({"type": "object"}),
                }
            },
            "/api/v1/endpoints": {
                "get": {"summary": "List endpoints", "responses": _ok({"type": "array", "items": _ref("Endpoint")})},
                "post": {
                    "summary": "Create an endpoint",
                    "requestBody": _body(_ref("NewEndpoint")),
                    "responses": {**_ok(_ref("Endpoint"), "Created", "201"), "409": _ERROR},
                },
            },
            "/api/v1/endpoints/{name}": {
                "parameters": endpoint_params,
                "get": {"summary": "An endpoint with its deployments", "responses": _ok(_ref("Endpoint"))},
                "delete": {"summary": "Delete an endpoint and stop its deployments", "responses": no_content},
                "patch": {
                    "summary": "Change an endpoint's description or tags",
                    "requestBody": _body(
                        {
                            "type": "object",
                            "properties": {
                                "description": {"type": "string"},
                                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                        }
                    ),
                    "responses": _ok(_ref("Endpoint")),
                },
            },
            "/api/v1/endpoints/{name}/keys": {
                "parameters": endpoint_params,
                "get": {"summary": "The endpoint's keys", "responses": _ok(_ref("Keys"))},
            },
            "/api/v1/endpoints/{name}/keys/regenerate": {
                "parameters": endpoint_params,
                "post": {
                    "summary": "Replace one key; the other keeps working",
                    "requestBody": _body({"type": "object", "properties": {"key": {"enum": ["primary", "secondary"]}}}),
                    "responses": _ok(_ref("Keys")),
                },
            },
            "/api/v1/endpoints/{name}/traffic": {
                "parameters": endpoint_params,
                "put": {
                    "summary": "Set the traffic split (summing to 100) and the mirror",
                    "requestBody": _body(_ref("Traffic")),
                    "responses": _ok(_ref("Endpoint")),
                },
            },
            "/api/v1/endpoints/{name}/deployments": {
                "parameters": endpoint_params,
                "get": {
                    "summary": "List the endpoint's deployments",
                    "responses": _ok({"type": "array", "items": _ref("Deployment")}),
                },
                "post": {
                    "summary": "Create a deployment (starts it; poll until status.state is ready)",
                    "requestBody": _body(_ref("NewDeployment")),
                    "responses": {**_ok(_ref("Deployment"), "Created", "201"), "409": _ERROR},
                },
            },
            "/api/v1/endpoints/{name}/deployments/{deployment}": {
                "parameters": deployment_params,
                "get": {"summary": "A deployment and its status", "responses": _ok(_ref("Deployment"))},
                "put": {
                    "summary": "Update a deployment (a rolling update: no request fails)",
                    "requestBody": _body(_ref("DeploymentChange")),
                    "responses": _ok(_ref("Deployment")),
                },
                "delete": {"summary": "Delete a deployment that takes no traffic", "responses": no_content},
            },
            "/api/v1/endpoints/{name}/deployments/{deployment}/logs": {
                "parameters": deployment_params,
                "get": {
                    "summary": "The last lines of the deployment's log (of the generation being started, else of "
                    "the serving one)",
                    "parameters": [
                        {"name": "lines", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 100}},
                        {"name": "follow", "in": "query", "schema": {"type": "boolean", "default": False}},
                        {
                            "name": "generation",
                            "in": "query",
                            "description": "This generation's log: serving, starting, or the last that failed",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                    ],
                    "responses": {
                        "200": {"description": "Log lines", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                },
            },
            "/api/v1/endpoints/{name}/deployments/{deployment}/data": {
                "parameters": deployment_params,
                "get": {
                    "summary": "The deployment's collected data (docs/data-collection.md): one JSON row per line, "
                    "oldest first",
                    "parameters": [
                        {
                            "name": "collection",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "style": "form",
                            "explode": True,
                        },
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "Collected rows",
                            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                },
            },
            **_model_paths(no_content),
        },
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "What went wrong, and how to fix it",
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "ModelSummary": {
                    "type": "object",
                    "required": ["name", "versions", "latest", "aliases"],
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "integer"},
                        "latest": {"type": ["integer", "null"]},
                        "aliases": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "created_at": {"type": "string", "format": "date-time"},
                    },
                },
                "ModelVersion": {
                    "type": "object",
                    "required": ["name", "version", "sha256", "size"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "integer"},
                        "kind": {"enum": ["file", "folder"]},
                        "sha256": {"type": "string"},
                        "size": {"type": "integer"},
                        "file_count": {"type": "integer"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "aliases": {"type": "array", "items": {"type": "string"}},
                        "files": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "path": {"type": "string"},
                                    "sha256": {"type": "string"},
                                    "size": {"type": "integer"},
                                },
                            },
                        },
                        "used_by": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Health": {
                    "type": "object",
                    "properties": {"status": {"const": "ok"}, "version": {"type": "string"}},
                },
                "NewEndpoint": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": _NAME,
                        "auth": {"enum": ["key", "none"], "default": "key"},
                        "description": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "Endpoint": {
                    "type": "object",
                    "properties": {
                        "name": _NAME,
                        "auth": {"enum": ["key", "none"]},
                        "description": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "traffic": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "mirror": {"oneOf": [_ref("Mirror"), {"type": "null"}]},
                        "scoring_uri": {"type": "string", "format": "uri"},
                        "swagger_uri": {"type": "string", "format": "uri"},
                        "docs_uri": {"type": "string", "format": "uri"},
                        "created_at": _TIME,
                        "deployments": {"type": "array", "items": _ref("Deployment")},
                    },
                },
                "Keys": {
                    "type": "object",
                    "properties": {"primary": {"type": "string"}, "secondary": {"type": "string"}},
                },
                "Mirror": {
                    "type": "object",
                    "properties": {
                        "deployment": _NAME,
                        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
                    },
                },
                "Traffic": {
                    "type": "object",
                    "properties": {
                        "traffic": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
                        },
                        "mirror": {"oneOf": [_ref("Mirror"), {"type": "null"}]},
                    },
                },
                "DeploymentChange": {
                    "type": "object",
                    "properties": {
                        "script": {"type": "string", "description": "Entry script, relative to code_dir"},
                        "code_dir": {"type": "string"},
                        "models": {"type": "array", "items": {"type": "string"}, "examples": [["sklearn_mnist:1"]]},
                        "instances": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1024,
                            "description": "Worker processes (local, at most 64), or replicas (ray, no autoscaling)",
                        },
                        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
                        "serve_options": {
                            "type": "object",
                            "description": "`scorehost serve` settings by field name (timeout, preload, run_input, "
                            "max_body_size, ...); those the control plane sets (host, port, uds, workers, models, "
                            "model_dir, home, entry_script) are refused",
                            "examples": [{"timeout": 30, "preload": True}],
                        },
                        "backend": {"type": "string", "enum": ["local", "ray"], "default": "local"},
                        "ray": {"oneOf": [_ref("RayOptions"), {"type": "null"}]},
                        "python_environment": {
                            "type": ["object", "null"],
                            "description": "The Python environment the script runs in (an environment "
                            "specification, as `scorehost environments build` reads it from a conda or "
                            "requirements file); null: scorehost's own",
                        },
                        "description": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "follow_models": {
                            "type": "boolean",
                            "description": "Follow the model labels among `models` (NAME:ALIAS, NAME:latest): when one "
                            "moves, the deployment rolls to the version it names",
                        },
                        "azureml": {
                            "type": "object",
                            "description": "Azure ML settings kept as a deployment YAML declared them (probes, "
                            "request and scale settings, resources, data_collector)",
                        },
                    },
                },
                "RayOptions": {
                    "type": "object",
                    "description": "How the deployment runs on a Ray cluster (backend ray); on update, merged into "
                    "the current options",
                    "required": ["address"],
                    "additionalProperties": False,
                    "properties": {
                        "address": {"type": "string", "description": "HOST:PORT of the cluster's head"},
                        "ingress": {"type": ["string", "null"], "description": "http://HOST:PORT of Serve's ingress"},
                        "min_replicas": {"type": ["integer", "null"], "minimum": 1},
                        "max_replicas": {"type": ["integer", "null"], "minimum": 1},
                        "target_ongoing": {"type": "number", "exclusiveMinimum": 0},
                        "upscale_delay_s": {
                            "type": "number",
                            "minimum": 0,
                            "description": "seconds the load must call for more replicas before Serve adds one",
                        },
                        "downscale_delay_s": {
                            "type": "number",
                            "minimum": 0,
                            "description": "seconds the load must call for fewer replicas before Serve removes one",
                        },
                        "max_ongoing": {"type": "integer", "minimum": 1},
                        "max_queued": {"type": "integer", "minimum": -1},
                        "num_cpus": {"type": "number", "minimum": 0},
                        "num_gpus": {
                            "type": "number",
                            "minimum": 0,
                            "maximum": 1024,
                            "description": "GPUs Ray reserves per replica: a fraction below 1 shares one GPU",
                        },
                        "health_check_s": {"type": "number", "minimum": 0.1},
                        "graceful_shutdown_s": {"type": "number", "minimum": 0},
                        "model_store": {"type": ["string", "null"]},
                        "insecure_cluster": {
                            "type": "boolean",
                            "description": "deploy even if the cluster checks no tokens (anyone who reaches it can "
                            "run code on it); default false: such a cluster is refused",
                        },
                    },
                },
                "NewDeployment": {
                    "allOf": [
                        _ref("DeploymentChange"),
                        {"type": "object", "required": ["name", "script", "code_dir"], "properties": {"name": _NAME}},
                    ]
                },
                "Deployment": {
                    "type": "object",
                    "properties": {
                        "endpoint": _NAME,
                        "name": _NAME,
                        "script": {"type": "string"},
                        "code_dir": {"type": "string"},
                        "models": {"type": "array", "items": {"type": "string"}},
                        "instances": {"type": "integer"},
                        "backend": {"type": "string", "enum": ["local", "ray"]},
                        "ray": {"oneOf": [_ref("RayOptions"), {"type": "null"}]},
                        "python_environment": {"type": ["object", "null"]},
                        "description": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "azureml": {"type": "object"},
                        "follow": {"type": "array", "items": {"type": "string"}},
                        "generation": {"type": "integer", "description": "Declared: the latest update's"},
                        "serving_generation": {
                            "type": ["integer", "null"],
                            "description": "The last generation that became ready: the one that serves",
                        },
                        "failure": {
                            "type": ["string", "null"],
                            "description": "Why the declared generation could not start (an older one serves)",
                        },
                        "created_at": _TIME,
                        "updated_at": {**_TIME, "description": "When it was last declared (created or updated)"},
                        "status": {"type": "object"},
                    },
                },
            },
        },
    }


def _model_paths(no_content: dict[str, Any]) -> dict[str, Any]:
    """The registry's routes: read every model, move or remove an alias."""
    registry_name = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"}  # registry/names.py
    name = {"name": "name", "in": "path", "required": True, "schema": registry_name}
    alias = {"name": "alias", "in": "path", "required": True, "schema": registry_name}
    version = {"type": "object", "required": ["version"], "properties": {"version": {"type": ["integer", "string"]}}}
    return {
        "/api/v1/models": {
            "get": {"summary": "Every model", "responses": _ok({"type": "array", "items": _ref("ModelSummary")})}
        },
        "/api/v1/models/{name}": {
            "parameters": [name],
            "get": {
                "summary": "A model, its versions (newest first) with their files and the deployments that run them",
                "responses": _ok(
                    {
                        "allOf": [
                            _ref("ModelSummary"),
                            {"properties": {"versions": {"type": "array", "items": _ref("ModelVersion")}}},
                        ]
                    }
                ),
            },
        },
        "/api/v1/models/{name}/aliases/{alias}": {
            "parameters": [name, alias],
            "put": {
                "summary": "Point the alias at a version (a number or another alias)",
                "requestBody": _body(version),
                "responses": _ok(_ref("ModelVersion")),
            },
            "delete": {"summary": "Remove the alias", "responses": no_content},
        },
    }
