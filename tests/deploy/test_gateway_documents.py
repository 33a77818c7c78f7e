"""endpoint_document(): a deployment's /swagger.json as the gateway serves it for one endpoint (in process).

The browser side (Swagger UI's Authorize box and "Try it out" through a real gateway) is in
tests/http/test_endpoint_docs_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate

from scorehost.deploy.gateway.documents import endpoint_document
from scorehost.schema import SwaggerDocs

SCRIPTS = Path(__file__).parents[1] / "scripts"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def served_document(version: str, mode: str = "plain") -> bytes:
    """What `scorehost serve` answers on /swagger.json?version=`version` for an undecorated run()."""

    def run(data: object) -> object:
        return data

    status, body = SwaggerDocs(run_function=run, mode=mode, app_root=SCRIPTS).answer(version)  # type: ignore[arg-type]
    assert status == 200
    return body


def rewritten(body: bytes, *, key: bool, endpoint: str = "mnist") -> dict[str, Any]:
    out = endpoint_document(body, endpoint, key=key)
    assert out is not None
    parsed: dict[str, Any] = orjson.loads(out)
    return parsed


def operations(document: dict[str, Any], path: str) -> dict[str, Any]:
    return {method: op for method, op in document["paths"][path].items() if method in METHODS}


@pytest.mark.parametrize("mode", ["plain", "raw"])
@pytest.mark.parametrize("version", ["3", "3.1"])
def test_openapi3_key_endpoint(version: str, mode: str) -> None:
    document = rewritten(served_document(version, mode), key=True)
    validate(document)
    assert document["servers"] == [{"url": "/endpoints/mnist", "description": "endpoint mnist on this gateway"}]
    assert list(document["paths"]) == ["/score", "/swagger.json"]  # what the gateway routes
    scheme = document["components"]["securitySchemes"]["Bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")  # Swagger UI sends "Bearer <what was typed>"
    assert "scorehost endpoints keys mnist" in scheme["description"]
    assert "security" not in document  # the document and the docs page need no key
    assert all(op["security"] == [{"Bearer": []}] for op in operations(document, "/score").values())
    assert all("security" not in op for op in operations(document, "/swagger.json").values())
    assert document["components"]["schemas"]["ServiceInput"] == {"type": "object", "example": {}}


@pytest.mark.parametrize("version", ["3", "3.1"])
def test_openapi3_open_endpoint(version: str) -> None:
    document = rewritten(served_document(version), key=False)
    validate(document)
    assert document["servers"][0]["url"] == "/endpoints/mnist"
    assert "securitySchemes" not in document["components"]
    assert "security" not in json.dumps(document)


def test_swagger2_key_and_open_endpoint() -> None:
    keyed = rewritten(served_document("2"), key=True)
    validate(keyed)
    assert keyed["basePath"] == "/endpoints/mnist"
    assert "schemes" not in keyed  # the scheme the document was fetched with, not the reference's https
    assert "host" not in keyed
    scheme = keyed["securityDefinitions"]["Bearer"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert all(op["security"] == [{"Bearer": []}] for op in operations(keyed, "/score").values())
    opened = rewritten(served_document("2"), key=False)
    validate(opened)
    assert "security" not in json.dumps(opened)
    assert list(opened["paths"]) == ["/score", "/swagger.json"]


def test_a_users_own_document_is_fitted_to_the_endpoint() -> None:
    """A user's swagger3.json, served as-is by the deployment: its servers, schemes and extra paths are replaced."""
    user = {
        "openapi": "3.0.3",
        "info": {"title": "mine", "version": "7"},
        "servers": [{"url": "https://cloud.example/api"}],
        "security": [{"Token": []}],
        "paths": {
            "/score": {"post": {"security": [{"Token": []}], "responses": {"200": {"description": "ok"}}}},
            "/admin": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
        "components": {"securitySchemes": {"Token": {"type": "apiKey", "name": "x-token", "in": "header"}}},
    }
    keyed = rewritten(json.dumps(user).encode(), key=True, endpoint="digits")
    validate(keyed)
    assert keyed["servers"][0]["url"] == "/endpoints/digits"
    assert list(keyed["paths"]) == ["/score"]
    assert list(keyed["components"]["securitySchemes"]) == ["Bearer"]
    assert keyed["paths"]["/score"]["post"]["security"] == [{"Bearer": []}]
    assert keyed["info"] == user["info"]
    opened = rewritten(json.dumps(user).encode(), key=False, endpoint="digits")
    assert "components" not in opened  # it held the security scheme only
    assert "security" not in json.dumps(opened)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"text"', b'{"title": "no version field"}'])
def test_what_is_not_a_document_goes_out_as_it_came(body: bytes) -> None:
    assert endpoint_document(body, "mnist", key=True) is None
