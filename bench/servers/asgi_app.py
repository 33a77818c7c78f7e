"""Bare Starlette app for uvicorn: ``uvicorn --loop uvloop --http httptools servers.asgi_app:app``."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .common import score


async def healthy(request: Request) -> Response:
    return PlainTextResponse("Healthy")


async def predict(request: Request) -> Response:
    return Response(score(await request.body()), media_type="application/json")


app = Starlette(routes=[Route("/", healthy), Route("/score", predict, methods=["POST"])])
