"""The OpenAPI documents themselves: Swagger 2.0 and OpenAPI 3.0/3.1, paths as the reference lists them, plus ours.

The reference's paths, operation ids and texts are kept, so clients generated from its documents still work.
Beyond it: GET /ready and GET /live are listed; a @rawhttp run() is described as what it is (GET, POST, PUT,
DELETE, OPTIONS and HEAD on /score, any content type); the /swagger.json `version` parameter lists the versions
this script answers (the reference says integers 2 and 3); and the 3.x request body carries the example at the
media type too, so Swagger UI's "try it out" starts from a request that works.
"""

from __future__ import annotations

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
_BEARER = {"type": "apiKey", "name": "Authorization", "in": "header", "description": "For example: Bearer abc123"}
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
        description = f"API specification for the Azure Machine Learning service {self.name}"
        return {"title": self.name, "description": description, "version": self.version}


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
        "securityDefinitions": {"Bearer": dict(_BEARER)},
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
                "security": [{"Bearer": []}],
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
            }
        }
    operations: JSON = {}
    for method in _RAW_METHODS:
        operation: JSON = {
            "operationId": _raw_operation_id(method),
            "description": _RAW_RUN,
            "security": [{"Bearer": []}],
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
        "security": [{"Bearer": []}],
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
            "securitySchemes": {"Bearer": dict(_BEARER)},
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
                "security": [{"Bearer": []}],
                "requestBody": {"description": _PAYLOAD, "content": {"application/json": json_body}},
                "responses": {
                    "200": {
                        "description": _RUN_OK,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}},
                    },
                    "default": error,
                },
            }
        }
    operations: JSON = {}
    for method in _RAW_METHODS:
        operation: JSON = {
            "operationId": _raw_operation_id(method),
            "description": _RAW_RUN,
            "security": [{"Bearer": []}],
            "responses": {"200": {"description": _RAW_OK, "content": {"*/*": {"schema": {}}}}, "default": error},
        }
        if method in ("post", "put"):
            content = {"application/json": json_body, "*/*": {"schema": {}}}
            operation["requestBody"] = {"description": _RAW_PAYLOAD, "content": content}
        operations[method] = operation
    return operations


def _raw_operation_id(method: str) -> str:
    # POST keeps the reference's id, so clients generated from its documents still find it.
    return "RunMLService" if method == "post" else f"RunMLService{method.capitalize()}"


def _version_schema(service: Service) -> JSON:
    return {"type": "string", "enum": list(service.versions)}
