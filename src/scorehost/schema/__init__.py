"""inference-schema decorators → the OpenAPI documents GET /swagger.json serves (Swagger 2.0, OpenAPI 3.0 and 3.1)."""

from __future__ import annotations

from scorehost.schema.swagger import SwaggerDocs

__all__ = ["SwaggerDocs"]
