"""The OpenAPI documents themselves: Swagger 2.0 and OpenAPI 3.0/3.1, paths as the reference lists them, plus ours.

The reference's paths, operation ids and texts are kept, so clients generated from its documents still work.
Beyond it: GET /ready and GET /live are listed; GET /score is listed (its query parameters, each read as JSON); a
@rawhttp run() is described as what it is (GET, POST, PUT, DELETE, OPTIONS and HEAD on /score, any content type);
the /swagger.json `version` parameter lists the versions this script answers (the reference says integers 2 and
3); the 3.x request body carries the example at the media type too, so Swagger UI's "try it out" starts from a
request that works. No security scheme: the server takes no key (the reference declares a bearer key that only
Azure's front end checks), so Swagger UI shows no Authorize button; the gateway declares one for a key endpoint
(`deploy/gateway/documents.py`). The description reads "Scoring API of <name>, served by scorehost", not the
reference's "API specification for the Azure Machine Learning service <name>" ("... service ML service").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Service", "openapi2", "openapi3"]

JSON = dict[str, Any]
Mode = Literal["plain", "typed", "raw"]

_FAILED = "The service failed to execute due to an error."
_HEALTH = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTHY = "If service is up and running, this response will be returned with the content 'Healthy'"
_RUN = "Run web service's model and get the prediction output"
_RUN_OK = "The service processed the input correctly and provided a result prediction, if applicable."
_PAYLOAD = "The input payload for executing the real-time machine learning service."
_READY = "Readiness check: 200 once init() has completed, 503 while the entry script is still loading."
_ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}
_LIVE = "Liveness check: 200 while the process is alive, init() included (for liveness probes)."
_LIVENESS = {"type": "object", "properties": {"status": {"type": "string"}}}
_READINESS = {"type": "object", "properties": {"status": {"type": "string"}, "message": {"type": "string"}}}
_RAW_METHODS = ("get", "post", "put", "delete", "options", "head")
_RAW_RUN = (
    "run() is decorated with @rawhttp: it receives the request itself (method, headers, query and body of any "
    "content type) and builds its own answer."
)
_RAW_OK = "What run() returned: a JSON value, or the status, headers and body of the AMLResponse it built."
_RAW_PAYLOAD = "Any body, of any content type: run() reads it from the request."
_RUN_GET = (
    "Run the model on the query parameters: each value is read as JSON when it parses (else as text) and run() "
    'gets them as it gets a POST body\'s JSON object, e.g. GET /score?data=[[1,2]] as POST /score {"data": [[1, 2]]}.'
)
_QUERY = (
    'The query parameters, as one JSON object of texts, e.g. {"data": "[[1, 2]]"}: each key is a parameter, and its '
    "text is read as JSON when it parses."
)


@dataclass(frozen=True)
class Service:
    """What every document of one script says."""

    name: str
    version: str
    path_prefix: str
    mode: Mode
    service_input: JSON
    service_output: JSON
    versions: tuple[str, ...]

    @property
    def prefix(self) -> str:
        stripped = self.path_prefix.strip("/")
        return f"/{stripped}" if stripped else ""

    def info(self) -> JSON:
        return {
            "title": self.name,
            "description": f"Scoring API of {self.name}, served by scorehost",
            "version": self.version,
        }

    def query_parameters(self, example_key: str) -> list[JSON]:
        """The top-level keys of a typed run()'s input, as the query parameters of GET /score: each a string, the
        JSON text of its value (its example under `example_key`: `example`, or Swagger 2's `x-example`).

        Not OpenAPI 3's `content: {application/json: ...}` with the value's schema: Swagger UI shows such a
        parameter's example as an unusable text ("List [ List [ 1, 2 ] ]") and would send that."""
        examples = self.service_input.get("example", {})
        parameters = []
        for name in self.service_input.get("properties", {}):
            where = "#/definitions" if example_key == "x-example" else "#/components/schemas"
            description = f"The value of `{name}`, written as JSON (its schema: `{name}` in {where}/ServiceInput)."
            parameter: JSON = {"name": name, "in": "query", "required": False, "description": description}
            parameter.update({"type": "string"} if example_key == "x-example" else {"schema": {"type": "string"}})
            if name in examples:
                parameter[example_key] = json.dumps(examples[name])
            parameters.append(parameter)
        return parameters


def openapi2(service: Service) -> JSON:
    """The Swagger 2.0 document."""
    error = {"description": _FAILED, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    p = service.prefix
    return {
        "swagger": "2.0",
        "info": service.info(),
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {
            f"{p}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH,
                    "responses": {
                        "200": {
                            "description": _HEALTHY,
                            "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"},
                        },
                        "default": error,
                    },
                }
            },
            f"{p}/score": _score2(service, error),
            f"{p}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [{"name": "version", "in": "query", "required": False, **_version_schema(service)}],
                    "responses": {
                        "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                        "default": error,
                    },
                }
            },
            f"{p}/ready": {
                "get": {
                    "operationId": "ServiceReadinessCheck",
                    "description": _READY,
                    "responses": {
                        "200": {
                            "description": "init() has completed.",
                            "schema": _READINESS,
                            "examples": {"application/json": {"status": "ready"}},
                        },
                        "503": {"description": "The entry script is still loading.", "schema": _READINESS},
                    },
                }
            },
            f"{p}/live": {
                "get": {
                    "operationId": "ServiceLivenessCheck",
                    "description": _LIVE,
                    "responses": {
                        "200": {
                            "description": "The process is alive.",
                            "schema": _LIVENESS,
                            "examples": {"application/json": {"status": "alive"}},
                        },
                    },
                }
            },
        },
        "definitions": {
            "ServiceInput": service.service_input,
            "ServiceOutput": service.service_output,
            "ErrorResponse": _ERROR,
        },
    }


def _score2(service: Service, error: JSON) -> JSON:
    if service.mode != "raw":
        return {
            "post": {
                "operationId": "RunMLService",
                "description": _RUN,
                "parameters": [
                    {
                        "name": "serviceInputPayload",
                        "in": "body",
                        "description": _PAYLOAD,
                        "schema": {"$ref": "#/definitions/ServiceInput"},
                    }
                ],
                "responses": {
                    "200": {"description": _RUN_OK, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                    "default": error,
                },
            },
            "get": {
                "operationId": _raw_operation_id("get"),
                "description": _RUN_GET,
                "parameters": service.query_parameters("x-example"),
                "responses": {
                    "200": {"description": _RUN_OK, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                    "default": error,
                },
            },
        }
    operations: JSON = {}
    for method in _RAW_METHODS:
        operation: JSON = {
            "operationId": _raw_operation_id(method),
            "description": _RAW_RUN,
            "produces": ["*/*"],
            "responses": {"200": {"description": _RAW_OK, "schema": {}}, "default": error},
        }
        if method in ("post", "put"):
            operation["consumes"] = ["*/*"]
            operation["parameters"] = [
                {"name": "serviceInputPayload", "in": "body", "description": _RAW_PAYLOAD, "schema": {}}
            ]
        operations[method] = operation
    return operations


def openapi3(service: Service, openapi: str) -> JSON:
    """The OpenAPI 3.x document (`openapi` is "3.0.3" or "3.1.0": the reference serves the same for both)."""
    error = {
        "description": _FAILED,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    p = service.prefix
    return {
        "openapi": openapi,
        "info": service.info(),
        "paths": {
            f"{p}/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH,
                    "responses": {
                        "200": {
                            "description": _HEALTHY,
                            "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
                        },
                        "default": error,
                    },
                }
            },
            f"{p}/score": _score3(service, error),
            f"{p}/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {"name": "version", "in": "query", "required": False, "schema": _version_schema(service)}
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "default": error,
                    },
                }
            },
            f"{p}/ready": {
                "get": {
                    "operationId": "ServiceReadinessCheck",
                    "description": _READY,
                    "responses": {
                        "200": {
                            "description": "init() has completed.",
                            "content": {"application/json": {"schema": _READINESS, "example": {"status": "ready"}}},
                        },
                        "503": {
                            "description": "The entry script is still loading.",
                            "content": {"application/json": {"schema": _READINESS}},
                        },
                    },
                }
            },
            f"{p}/live": {
                "get": {
                    "operationId": "ServiceLivenessCheck",
                    "description": _LIVE,
                    "responses": {
                        "200": {
                            "description": "The process is alive.",
                            "content": {"application/json": {"schema": _LIVENESS, "example": {"status": "alive"}}},
                        },
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "ServiceInput": service.service_input,
                "ServiceOutput": service.service_output,
                "ErrorResponse": _ERROR,
            },
        },
    }


def _score3(service: Service, error: JSON) -> JSON:
    json_body: JSON = {"schema": {"$ref": "#/components/schemas/ServiceInput"}}
    if "example" in service.service_input:
        json_body["example"] = service.service_input["example"]
    if service.mode != "raw":
        return {
            "post": {
                "operationId": "RunMLService",
                "description": _RUN,
                "requestBody": {"description": _PAYLOAD, "content": {"application/json": json_body}},
                "responses": {
                    "200": {
                        "description": _RUN_OK,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}},
                    },
                    "default": error,
                },
            },
            "get": {
                "operationId": _raw_operation_id("get"),
                "description": _RUN_GET,
                "parameters": service.query_parameters("example") or [_free_query(service)],
                "responses": {
                    "200": {
                        "description": _RUN_OK,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}},
                    },
                    "default": error,
                },
            },
        }
    operations: JSON = {}
    for method in _RAW_METHODS:
        operation: JSON = {
            "operationId": _raw_operation_id(method),
            "description": _RAW_RUN,
            "responses": {"200": {"description": _RAW_OK, "content": {"*/*": {"schema": {}}}}, "default": error},
        }
        if method in ("post", "put"):
            content = {"application/json": json_body, "*/*": {"schema": {}}}
            operation["requestBody"] = {"description": _RAW_PAYLOAD, "content": content}
        operations[method] = operation
    return operations


def _free_query(service: Service) -> JSON:
    """Any query parameters (an undecorated run()), written by Swagger UI from one JSON object."""
    example = service.service_input.get("example", {})
    schema = {"type": "object", "additionalProperties": {"type": "string"}, "example": example}
    return {"name": "query", "in": "query", "description": _QUERY, "style": "form", "explode": True, "schema": schema}


def _raw_operation_id(method: str) -> str:
    # POST keeps the reference's id, so clients generated from its documents still find it.
    return "RunMLService" if method == "post" else f"RunMLService{method.capitalize()}"


def _version_schema(service: Service) -> JSON:
    return {"type": "string", "enum": list(service.versions)}
