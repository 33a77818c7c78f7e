"""`AMLRequest`: the request a `@rawhttp` `run()` receives, with the Flask request API scripts use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers import Request

from scorehost.compat.rawhttp import rawhttp

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["AMLRequest", "rawhttp"]


class AMLRequest(Request):
    """A Werkzeug request that behaves like the `flask.Request` the reference server hands to `run()`.

    Build one per request from its WSGI environ: `AMLRequest(environ)`. With no argument it describes an
    empty `GET /` (the reference's `AMLRequest()` is a no-argument constructor that scripts may call).
    Werkzeug supplies `method`, `headers`, `args`, `form`, `files`, `get_data()`, `data`, `json`,
    `get_json()`, `full_path`, `url`, ...; Flask's additions that scripts can observe are mirrored here:
    undecodable JSON raises a bare 400 `BadRequest` (the detail stays in `__cause__`), a non-JSON content
    type raises 415, and the routing attributes exist.
    """

    #: Flask's routing attributes. scorehost routes `/score` itself, so there is no rule to report.
    url_rule: Any = None
    routing_exception: HTTPException | None = None

    def __init__(
        self, environ: WSGIEnvironment | None = None, populate_request: bool = True, shallow: bool = False
    ) -> None:
        super().__init__(environ if environ is not None else _blank_environ(), populate_request, shallow)
        self.view_args: dict[str, Any] | None = {}  # /score takes no URL arguments

    @property
    def endpoint(self) -> str | None:
        """Flask's matched endpoint name; None, as no Flask rule matched."""
        return None

    @property
    def blueprint(self) -> str | None:
        """Flask's blueprint name; None, as no Flask blueprint is involved."""
        return None

    @property
    def blueprints(self) -> list[str]:
        """Flask's blueprint chain; always empty here."""
        return []

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Raise as Flask does outside debug mode: 415 for a non-JSON type, a bare 400 for invalid JSON."""
        try:
            return super().on_json_loading_failed(e)
        except BadRequest as detailed:
            raise BadRequest() from detailed


def _blank_environ() -> WSGIEnvironment:
    from werkzeug.test import EnvironBuilder  # only for the rare no-argument construction

    return EnvironBuilder().get_environ()
