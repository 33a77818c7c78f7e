"""The web console, at `/console/` on the control plane's API port: sign-in, sessions, CSRF, headers.

Pages are rendered on the server (console/pages.py) with a little script: htmx for the log tail and the Test
panel, uPlot for the charts, both shipped in the wheel. Every answer carries a strict Content-Security-Policy
(scripts and styles from this origin only, nothing inline), and every change is a POST that carries the
session's CSRF token, from a page of this origin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from scorehost.console.api_client import ApiClient, ApiRefused
from scorehost.console.assets import asset, asset_version
from scorehost.console.pages import Pages
from scorehost.console.sampler import MetricsSampler
from scorehost.console.sessions import Session, SignIns
from scorehost.deploy.keys import bearer_token, key_matches

__all__ = ["PREFIX", "ConsoleApp", "mount"]

logger = logging.getLogger("scorehost.console")

PREFIX = "/console"
COOKIE = "scorehost_console"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_MAX_FORM = 1 << 20

_MAP = Map(
    [
        Rule("/console/", endpoint="endpoints", methods=["GET"]),
        Rule("/console/signin", endpoint="signin_form", methods=["GET"]),
        Rule("/console/signin", endpoint="signin", methods=["POST"]),
        Rule("/console/signin/<code>", endpoint="signin_link", methods=["GET"]),
        Rule("/console/signout", endpoint="signout", methods=["POST"]),
        Rule("/console/links", endpoint="new_link", methods=["POST"]),
        Rule("/console/static/<name>", endpoint="static", methods=["GET"]),
        Rule("/console/endpoints/<name>", endpoint="endpoint", methods=["GET"]),
        Rule("/console/endpoints/<name>/traffic", endpoint="traffic", methods=["POST"]),
        Rule("/console/endpoints/<name>/keys", endpoint="keys", methods=["GET"]),
        Rule("/console/endpoints/<name>/keys/regenerate", endpoint="regenerate", methods=["POST"]),
        Rule("/console/endpoints/<name>/test", endpoint="test", methods=["POST"]),
        Rule("/console/endpoints/<name>/metrics", endpoint="metrics", methods=["GET"]),
        Rule("/console/endpoints/<name>/deployments/<deployment>", endpoint="deployment", methods=["GET"]),
        Rule("/console/endpoints/<name>/deployments/<deployment>/logs", endpoint="logs", methods=["GET"]),
        Rule("/console/models", endpoint="models", methods=["GET"]),
        Rule("/console/models/<name>", endpoint="model", methods=["GET"]),
        Rule("/console/models/<name>/aliases", endpoint="alias", methods=["POST"]),
    ],
    strict_slashes=False,
)
_OPEN = {"signin_form", "signin", "signin_link", "static", "new_link"}  # reachable without a session


class ConsoleApp:
    """The console's WSGI app; `api_app` is the control plane's API, which every page reads and every form
    changes through."""

    def __init__(
        self,
        api_app: Any,
        token: str,
        gateway_url: str,
        sampler: MetricsSampler | None = None,
        sign_ins: SignIns | None = None,
    ) -> None:
        self._token = token
        self.sign_ins = sign_ins or SignIns()
        self.pages = Pages(ApiClient(api_app, token), gateway_url, sampler, asset_version())

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = _MAX_FORM
        request.max_form_memory_size = _MAX_FORM
        response = self._dispatch(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if request.path == PREFIX:
            return redirect(f"{PREFIX}/", 308)
        try:
            name, arguments = _MAP.bind_to_environ(request.environ).match()
        except NotFound:
            return self.pages.message(404, "No such page", "The console has no page at this address.")
        except MethodNotAllowed:
            return self.pages.message(405, "Not allowed", f"{request.method} is not used on this page.")
        except HTTPException as error:  # a redirect, say
            return error.get_response(request.environ)
        session = self.sign_ins.session(request.cookies.get(COOKIE))
        if name not in _OPEN:
            if session is None:
                return self._to_signin(request)
            if request.method == "POST" and not self._csrf_ok(request, session):
                return self.pages.message(
                    403, "Refused", "This form is stale or came from another site: reload the page and try again."
                )
        try:
            handler: Callable[..., Response] = getattr(self, f"_{name}", None) or getattr(self.pages, name)
            return handler(request, session, **arguments) if name not in _OPEN else handler(request, **arguments)
        except ApiRefused as refused:
            return self.pages.message(
                refused.status, "Not found" if refused.status == 404 else "Refused", refused.message
            )
        except Exception:  # a bug: the page says so, the log has the details
            logger.exception("console: %s %s failed", request.method, request.path)
            return self.pages.message(
                500, "Something failed", "The control plane's log (controlplane/controlplane.log) says why."
            )

    # -- signing in ------------------------------------------------------------------------------------

    def _to_signin(self, request: Request) -> Response:
        if request.headers.get("HX-Request") or request.path.endswith("/metrics"):
            response = Response("sign in again", status=401, content_type="text/plain; charset=utf-8")
            response.headers["HX-Redirect"] = f"{PREFIX}/signin"
            return response
        return redirect(f"{PREFIX}/signin?next={quote(request.full_path.rstrip('?'), safe='/?=&')}", 303)

    def _same_origin(self, request: Request) -> bool:
        """A POST from a page of this origin: a browser names the origin it came from; a form elsewhere cannot
        pretend otherwise."""
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            referer = request.headers.get("Referer")
            origin = f"{urlsplit(referer).scheme}://{urlsplit(referer).netloc}" if referer else None
        return origin is None or origin == f"{request.scheme}://{request.host}"

    def _csrf_ok(self, request: Request, session: Session) -> bool:
        offered = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token")
        return self._same_origin(request) and session.csrf_matches(offered)

    def _signin_form(self, request: Request) -> Response:
        return self.pages.signin(_next(request.args.get("next")))

    def _signin(self, request: Request) -> Response:
        if not self._same_origin(request):
            return self.pages.message(403, "Refused", "Sign in from the console's own page.")
        if not key_matches(request.form.get("token", "").strip(), [self._token]):
            logger.warning("console: a sign-in with a wrong token from %s", request.remote_addr)
            return self.pages.signin(_next(request.form.get("next")), error=True)
        return self._signed_in(_next(request.form.get("next")))

    def _signin_link(self, request: Request, code: str) -> Response:
        if not self.sign_ins.use_link(code):
            return self.pages.signin(f"{PREFIX}/", expired_link=True)
        return self._signed_in(f"{PREFIX}/")

    def _signed_in(self, target: str) -> Response:
        cookie, _session = self.sign_ins.start()
        response = redirect(target, 303)
        response.set_cookie(COOKIE, cookie, path=PREFIX, httponly=True, samesite="Strict")
        return response

    def _signout(self, request: Request, session: Session) -> Response:
        self.sign_ins.end(request.cookies.get(COOKIE))
        response = redirect(f"{PREFIX}/signin", 303)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="Strict")
        return response

    def _new_link(self, request: Request) -> Response:
        """For `scorehost console`: a one-time sign-in link, to whoever holds the control plane's token."""
        if not key_matches(bearer_token(request.headers.get("Authorization")), [self._token]):
            return Response('{"error": "missing or wrong control-plane token"}', 401, content_type="application/json")
        link = json.dumps({"path": f"{PREFIX}/signin/{self.sign_ins.new_link()}"})
        return Response(link, 201, content_type="application/json")

    def _static(self, request: Request, name: str) -> Response:
        found = asset(name)
        if found is None:
            return Response("not found", 404, content_type="text/plain; charset=utf-8")
        response = Response(found[0], content_type=found[1])
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def _next(value: str | None) -> str:
    """Where to go after signing in: a console page, never another site."""
    if value and value.startswith(f"{PREFIX}/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/"


def mount(api_app: Any, console: ConsoleApp) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """One WSGI app: the console under `/console`, the API everywhere else."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == PREFIX or path.startswith(f"{PREFIX}/"):
            return console(environ, start_response)
        return api_app(environ, start_response)  # type: ignore[no-any-return]

    return app
