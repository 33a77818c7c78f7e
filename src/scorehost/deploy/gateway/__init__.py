"""The gateway: one HTTP port in front of every endpoint, routing by the table the control plane writes."""

from scorehost.deploy.gateway.app import GatewayApp
from scorehost.deploy.gateway.routes import (
    DeploymentRoute,
    EndpointRoute,
    RouteFile,
    RouteTable,
    Target,
    parse_routes,
    routes_path,
    write_routes,
)
from scorehost.deploy.gateway.server import serve_gateway
from scorehost.deploy.gateway.worker import Limits

__all__ = [
    "DeploymentRoute",
    "EndpointRoute",
    "GatewayApp",
    "Limits",
    "RouteFile",
    "RouteTable",
    "Target",
    "parse_routes",
    "routes_path",
    "serve_gateway",
    "write_routes",
]
