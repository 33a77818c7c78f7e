"""A deployment's `/swagger.json` as the gateway serves it at `/endpoints/<name>/swagger.json`.

The deployment describes its own server: operations from `/`, no key (`scorehost serve` takes none). Through the
gateway the same operations live under `/endpoints/<name>`, only `/score` and `/swagger.json` are routed, and
`/score` may need the endpoint's key. So the document is rewritten to say that, and Swagger UI's "Try it out" on
the endpoint's docs page reaches the endpoint: the base (OpenAPI 3 `servers`, Swagger 2 `basePath`, both relative
to the gateway's address so they hold behind a proxy), the paths the gateway routes, and for a key endpoint a
bearer scheme on `/score`, which Swagger UI's Authorize box fills in (`Authorization: Bearer <key>`). Only the
document is read: the keys never are, and none is ever written into it.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["ROUTED", "endpoint_document"]

ROUTED = ("/score", "/swagger.json")
"""The paths of a deployment's document that the gateway routes: the others are left out."""

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_SCHEME = "Bearer"  # the name the reference's documents (and their operations' `security`) use


def endpoint_document(body: bytes, endpoint: str, *, key: bool) -> bytes | None:
    """The document `body` rewritten for the endpoint `endpoint` (`key`: it needs a key), or None when `body` is
    not an OpenAPI 3 or Swagger 2 document (it then goes out as it came)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    base = f"/endpoints/{endpoint}"
    how = f"the key of endpoint {endpoint}: `scorehost endpoints keys {endpoint}` prints it"
    if "openapi" in document:
        document["servers"] = [{"url": base, "description": f"endpoint {endpoint} on this gateway"}]
        components = document.get("components")
        if not isinstance(components, dict):
            components = document["components"] = {}
        components.pop("securitySchemes", None)
        if key:  # Swagger UI asks for the key alone and sends `Authorization: Bearer <key>`
            components["securitySchemes"] = {_SCHEME: {"type": "http", "scheme": "bearer", "description": how}}
        elif not components:
            del document["components"]
    elif "swagger" in document:
        document["basePath"] = base
        document.pop("host", None)  # the gateway's address, whatever the deployment's document named
        document.pop("schemes", None)  # ... and its scheme: the one the document was fetched with
        document.pop("securityDefinitions", None)
        if key:  # Swagger 2 has no bearer scheme: an API key in the header, its value `Bearer <key>`
            scheme = {"type": "apiKey", "name": "Authorization", "in": "header", "description": f"Bearer <{how}>"}
            document["securityDefinitions"] = {_SCHEME: scheme}
    else:
        return None
    document.pop("security", None)  # per operation below: the document itself needs no key
    paths = document.get("paths")
    if isinstance(paths, dict):
        document["paths"] = {
            path: _operations(item, key and path == "/score") for path, item in paths.items() if path in ROUTED
        }
    return orjson.dumps(document)


def _operations(item: Any, key: bool) -> Any:
    """A path item's operations, each needing the key (`key`) or not."""
    if not isinstance(item, dict):
        return item
    for method, operation in item.items():
        if method in _METHODS and isinstance(operation, dict):
            operation.pop("security", None)
            if key:
                operation["security"] = [{_SCHEME: []}]
    return item
