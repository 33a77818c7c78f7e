"""The console's pages and forms: each reads the API, renders a template, or sends the API one change."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from scorehost.collection.settings import is_secret_header
from scorehost.config import format_size
from scorehost.console.api_client import ApiClient, ApiRefused, path
from scorehost.console.probe import sample_request, send_probe
from scorehost.console.sampler import MetricsSampler
from scorehost.console.sessions import Session
from scorehost.timestamps import parse_iso_utc

__all__ = ["Pages"]

_CHANGED = {
    "traffic": "Traffic updated: the gateway routes by the new split now.",
    "keys": "Key regenerated: callers with the old one are refused from now on.",
    "alias": "Alias moved: deployments that follow it roll to the version it names.",
}
_LOG_LINES = 200


def _when(value: Any) -> str:
    """A time from the API (ISO 8601, scorehost/timestamps.py) as `2026-12-07 14:03:11 UTC`."""
    if value in (None, ""):
        return "—"
    try:
        seconds = parse_iso_utc(str(value))
    except ValueError:
        return str(value)
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _masked(key: str | None) -> str:
    return "—" if not key else "•" * 12 + key[-4:]


def _environment(variables: dict[str, str]) -> list[tuple[str, str]]:
    """The script's variables, values of secret-looking names hidden (their names tell what they hold)."""
    return [
        (name, "(hidden)" if is_secret_header(name.lower().replace("_", "-")) else value)
        for name, value in sorted(variables.items())
    ]


class Pages:
    """Renders each page from what the API answers."""

    def __init__(self, api: ApiClient, gateway_url: str, sampler: MetricsSampler | None, version: str) -> None:
        self.api = api
        self.gateway_url = gateway_url
        self.sampler = sampler
        self.templates = Environment(
            loader=PackageLoader("scorehost.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(when=_when, size=format_size, masked=_masked, tojson_pretty=_pretty)
        self.templates.globals.update(asset_version=version)

    def render(self, template: str, status: int = 200, session: Session | None = None, **context: Any) -> Response:
        html = self.templates.get_template(template).render(session=session, **context)
        return Response(html, status=status, content_type="text/html; charset=utf-8")

    def message(self, status: int, title: str, text: str) -> Response:
        return self.render("message.html", status, title=title, text=text)

    def signin(self, next_page: str, *, error: bool = False, expired_link: bool = False) -> Response:
        return self.render(
            "signin.html", 401 if error else 200, next_page=next_page, wrong_token=error, expired_link=expired_link
        )

    # -- endpoints --------------------------------------------------------------------------------------

    def endpoints(self, request: Request, session: Session) -> Response:
        shown = [self.api.get(path("endpoints", record["name"])) for record in self.api.get(path("endpoints"))]
        return self.render("endpoints.html", session=session, endpoints=shown)

    def endpoint(
        self, request: Request, session: Session, name: str, error: str | None = None, status: int = 200
    ) -> Response:
        endpoint = self.api.get(path("endpoints", name))
        keys = self.api.get(path("endpoints", name, "keys")) if endpoint["auth"] == "key" else None
        sample = sample_request(self.gateway_url, name, keys["primary"] if keys else None)
        return self.render(
            "endpoint.html",
            status,
            session=session,
            endpoint=endpoint,
            keys=keys,
            sample=sample,
            error=error,
            changed=_CHANGED.get(request.args.get("changed", "")),
        )

    def _change(self, send: Callable[[], object], again: Callable[..., Response], done: str) -> Response:
        """Send one change to the API, then go to `done`; refused, the same page again with the API's message (a
        page whose endpoint or model is gone answers 404 itself)."""
        try:
            send()
        except ApiRefused as refused:
            return again(error=refused.message, status=refused.status)
        return redirect(done, 303)

    def traffic(self, request: Request, session: Session, name: str) -> Response:
        def send() -> None:
            split = {
                field.removeprefix("traffic."): _whole(value, f"the share of {field.removeprefix('traffic.')}")
                for field, value in request.form.items()
                if field.startswith("traffic.")
            }
            mirror = request.form.get("mirror") or None
            percent = _whole(request.form.get("mirror_percent") or "0", "the mirrored share")
            body = {"traffic": split, "mirror": {"deployment": mirror, "percent": percent} if mirror else None}
            self.api.send("PUT", path("endpoints", name, "traffic"), body)

        again = functools.partial(self.endpoint, request, session, name)
        return self._change(send, again, f"/console/endpoints/{name}?changed=traffic")

    def keys(self, request: Request, session: Session, name: str) -> Response:
        return Response(json.dumps(self.api.get(path("endpoints", name, "keys"))), content_type="application/json")

    def regenerate(self, request: Request, session: Session, name: str) -> Response:
        body = {"key": request.form.get("key", "primary")}
        return self._change(
            lambda: self.api.send("POST", path("endpoints", name, "keys", "regenerate"), body),
            functools.partial(self.endpoint, request, session, name),
            f"/console/endpoints/{name}?changed=keys",
        )

    def test(self, request: Request, session: Session, name: str) -> Response:
        endpoint = self.api.get(path("endpoints", name))
        keys = self.api.get(path("endpoints", name, "keys")) if endpoint["auth"] == "key" else None
        deployment = request.form.get("deployment") or None
        result = send_probe(
            self.gateway_url, name, request.form.get("body", ""), keys["primary"] if keys else None, deployment
        )
        return self.render("test_result.html", result=result)

    def metrics(self, request: Request, session: Session, name: str) -> Response:
        deployment = request.args.get("deployment", "")
        try:
            since = float(request.args.get("since", "0"))
        except ValueError:
            since = 0.0
        if self.sampler is None:
            series: dict[str, Any] = {"interval": 0, "t": []}
        else:
            series = self.sampler.series(name, deployment, since)
        return Response(json.dumps(series), content_type="application/json")

    # -- deployments ------------------------------------------------------------------------------------

    def deployment(self, request: Request, session: Session, name: str, deployment: str) -> Response:
        record = self.api.get(path("endpoints", name, "deployments", deployment))
        processes = self.api.get(path("status")).get("deployments", [])
        generations = sorted(
            (p for p in processes if p.get("endpoint") == name and p.get("deployment") == deployment),
            key=lambda p: -int(p.get("generation") or 0),
        )
        spec = {k: v for k, v in record.items() if k not in ("status", "environment")}
        return self.render(
            "deployment.html",
            session=session,
            endpoint=name,
            record=record,
            state=record.get("status") or {},
            generations=generations,
            spec=spec,
            environment=_environment(record.get("environment") or {}),
            log=self._log(name, deployment),
        )

    def logs(self, request: Request, session: Session, name: str, deployment: str) -> Response:
        return self.render("log_tail.html", log=self._log(name, deployment))

    def _log(self, name: str, deployment: str) -> str:
        return self.api.text(path("endpoints", name, "deployments", deployment, "logs"), lines=str(_LOG_LINES))

    # -- models -----------------------------------------------------------------------------------------

    def models(self, request: Request, session: Session) -> Response:
        return self.render("models.html", session=session, models=self.api.get(path("models")))

    def model(
        self, request: Request, session: Session, name: str, error: str | None = None, status: int = 200
    ) -> Response:
        model = self.api.get(path("models", name))
        return self.render(
            "model.html",
            status,
            session=session,
            model=model,
            error=error,
            changed=_CHANGED.get(request.args.get("changed", "")),
        )

    def alias(self, request: Request, session: Session, name: str) -> Response:
        alias, version = request.form.get("alias", "").strip(), request.form.get("version", "").strip()

        def send() -> None:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", alias):
                raise ApiRefused(400, "give the alias a name: letters, digits, '_', '-' and '.'")
            self.api.send("PUT", path("models", name, "aliases", alias), {"version": version})

        again = functools.partial(self.model, request, session, name)
        return self._change(send, again, f"/console/models/{name}?changed=alias")


def _whole(value: str, what: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,3}", text):
        raise ApiRefused(400, f"{what} must be a whole percentage from 0 to 100, not {text!r}")
    return int(text)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
