"""The gateway's routing table: which endpoints exist, their keys, and where their deployments answer.

The control plane writes it as one JSON file, `<SCOREHOST_HOME>/gateway/routes.json` (`write_routes`:
tmp file + rename, mode 0600 because it holds keys); every gateway worker process reloads it when the
file changes (`RouteFile`), so no other channel between them is needed. The schema, version 1:

```json
{"version": 1,
 "endpoints": {
   "mnist": {"auth": "key", "keys": ["<primary>", "<secondary>"],
             "deployments": {"blue": {"weight": 90, "targets": ["unix:/run/sh/blue.sock"]},
                             "green": {"weight": 10, "targets": ["http://127.0.0.1:41002"]},
                             "shadow": {"weight": 0, "targets": ["http://127.0.0.1:41003"]}},
             "mirror": "shadow", "mirror_percent": 10}}}
```

A target is `http://HOST:PORT[/PREFIX]` (PREFIX: an application's route prefix on a shared ingress, such
as Ray Serve's, put before the forwarded path) or `unix:PATH` (`unix:@NAME`: an abstract socket). A deployment with an
empty `targets` list exists (the header can name it) but has no ready instance: 503.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from scorehost.deploy.spec import AuthMode, check_resource_name
from scorehost.errors import InvalidSpec
from scorehost.private_files import write_private

__all__ = [
    "DeploymentRoute",
    "EndpointRoute",
    "RouteFile",
    "RouteTable",
    "Target",
    "parse_routes",
    "routes_path",
    "write_routes",
]

SCHEMA_VERSION = 1
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)*$")  # the segments a route prefix may have: no %-escapes
logger = logging.getLogger("scorehost.gateway")


def routes_path(home: str | os.PathLike[str]) -> Path:
    """Where the routing table of the workspace `home` lives."""
    return Path(home).expanduser().absolute() / "gateway" / "routes.json"


@dataclass(frozen=True, slots=True)
class Target:
    """One instance of a deployment: a plain-HTTP base URL's host, port and path prefix (an application's route
    prefix on a shared Serve ingress), or a Unix socket (`path`)."""

    host: str
    port: int
    path: str | None = None
    prefix: str = ""  # "" or "/a/b": prepended to the forwarded path

    @classmethod
    def parse(cls, url: str) -> Target:
        """`http://HOST:PORT[/PREFIX]`, or `unix:PATH` (an absolute path, or `@NAME` for an abstract socket)."""
        if url.startswith("unix:"):
            path = url.removeprefix("unix:")
            if not (path.startswith("/") or (path.startswith("@") and len(path) > 1)) or "\0" in path:
                raise InvalidSpec(f"a Unix socket target is unix:/ABSOLUTE/PATH or unix:@NAME, not {url!r}")
            return cls("localhost", 0, path)
        parts = urlsplit(url)
        prefix = parts.path.rstrip("/")
        plain_prefix = _PREFIX.match(prefix) and not any(segment in (".", "..") for segment in prefix.split("/"))
        if parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment or not plain_prefix:
            raise InvalidSpec(f"a target is a plain http://HOST:PORT[/PREFIX] base URL or unix:PATH, not {url!r}")
        try:
            port = parts.port or 80
        except ValueError:
            raise InvalidSpec(f"{url!r} has an invalid port") from None
        return cls(parts.hostname, port, None, prefix)

    @property
    def url(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}"


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    """A deployment's share of live traffic and its instances, taken in turn."""

    name: str
    weight: int
    targets: tuple[Target, ...]
    # Round-robin position: the one mutable part, shared by the requests of one table's life.
    _turn: itertools.count[int] = field(default_factory=itertools.count, compare=False, repr=False)
    served: bytes = field(default=b"", init=False, compare=False, repr=False)
    """The header line every answer it gives carries, `azureml-model-deployment: <name>` (as Azure ML's
    endpoints send it): made once per table, not per request. Names are checked, so they fit a header."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "served", b"azureml-model-deployment: %s\r\n" % self.name.encode())

    def next_target(self) -> Target | None:
        """The next instance in turn, or None when none is ready."""
        targets = self.targets
        if not targets:
            return None
        return targets[next(self._turn) % len(targets)] if len(targets) > 1 else targets[0]


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """One endpoint: who may call it, where its traffic goes, and which deployment gets copies."""

    name: str
    auth: AuthMode
    keys: tuple[str, ...]
    deployments: Mapping[str, DeploymentRoute]
    mirror: DeploymentRoute | None = None
    mirror_percent: int = 0
    _live: tuple[DeploymentRoute, ...] = field(default=(), compare=False, repr=False)
    _bounds: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        live = tuple(d for d in self.deployments.values() if d.weight > 0)
        object.__setattr__(self, "_live", live)
        object.__setattr__(self, "_bounds", tuple(itertools.accumulate(d.weight for d in live)))

    def choose(self) -> DeploymentRoute | None:
        """A deployment drawn at random by weight; None when no deployment takes traffic."""
        live = self._live
        if len(live) == 1:
            return live[0]
        if not live:
            return None
        bounds = self._bounds
        return live[bisect.bisect_right(bounds, random.random() * bounds[-1])]

    def mirrors_now(self) -> bool:
        """Whether this request is one of the mirror_percent copied to the mirror."""
        return self.mirror is not None and self.mirror_percent > 0 and random.random() * 100 < self.mirror_percent


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every endpoint the gateway answers for, by name."""

    endpoints: Mapping[str, EndpointRoute] = field(default_factory=dict)


def parse_routes(data: Any) -> RouteTable:
    """Validate the JSON document (already parsed) and build the table; InvalidSpec names what is wrong."""
    if not isinstance(data, dict) or data.get("version") != SCHEMA_VERSION:
        raise InvalidSpec(f"the routing table must be an object with version {SCHEMA_VERSION}")
    endpoints = data.get("endpoints", {})
    if not isinstance(endpoints, dict):
        raise InvalidSpec("'endpoints' must be an object")
    return RouteTable({name: _endpoint(name, value) for name, value in endpoints.items()})


def _endpoint(name: str, value: Any) -> EndpointRoute:
    check_resource_name("endpoint", name)
    where = f"endpoint {name}"
    if not isinstance(value, dict):
        raise InvalidSpec(f"{where}: must be an object")
    try:
        auth = AuthMode(value.get("auth", "key"))
    except ValueError:
        raise InvalidSpec(f"{where}: auth must be 'key' or 'none'") from None
    keys = value.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise InvalidSpec(f"{where}: keys must be a list of non-empty strings")
    if auth is AuthMode.KEY and not keys:
        raise InvalidSpec(f"{where}: auth 'key' needs at least one key")
    raw = value.get("deployments", {})
    if not isinstance(raw, dict):
        raise InvalidSpec(f"{where}: deployments must be an object")
    deployments = {d: _deployment(where, d, v) for d, v in raw.items()}
    mirror_name = value.get("mirror")
    percent = value.get("mirror_percent", 0)
    if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
        raise InvalidSpec(f"{where}: mirror_percent must be an integer from 0 to 100")
    mirror = None
    if mirror_name is not None:
        mirror = deployments.get(mirror_name) if isinstance(mirror_name, str) else None
        if mirror is None:
            raise InvalidSpec(f"{where}: the mirror {mirror_name!r} is not one of its deployments")
    return EndpointRoute(name, auth, tuple(keys), deployments, mirror, percent)


def _deployment(where: str, name: str, value: Any) -> DeploymentRoute:
    check_resource_name("deployment", name)
    if not isinstance(value, dict):
        raise InvalidSpec(f"{where}, deployment {name}: must be an object")
    weight = value.get("weight", 0)
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
        raise InvalidSpec(f"{where}, deployment {name}: weight must be an integer from 0 to 100")
    targets = value.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise InvalidSpec(f"{where}, deployment {name}: targets must be a list of URLs")
    return DeploymentRoute(name, weight, tuple(Target.parse(t) for t in targets))


def routes_document(table: RouteTable) -> dict[str, Any]:
    """The JSON document of `table` (what `parse_routes` reads back)."""
    endpoints: dict[str, Any] = {}
    for name, endpoint in table.endpoints.items():
        endpoints[name] = {
            "auth": endpoint.auth.value,
            "keys": list(endpoint.keys),
            "deployments": {
                d.name: {"weight": d.weight, "targets": [t.url for t in d.targets]}
                for d in endpoint.deployments.values()
            },
            "mirror": endpoint.mirror.name if endpoint.mirror else None,
            "mirror_percent": endpoint.mirror_percent,
        }
    return {"version": SCHEMA_VERSION, "endpoints": endpoints}


def write_routes(path: str | os.PathLike[str], table: RouteTable | Mapping[str, Any]) -> None:
    """Replace the routing table at `path` atomically (readers see the old file or the new, never half),
    readable by this user only: it holds the endpoints' keys."""
    document = routes_document(table) if isinstance(table, RouteTable) else dict(table)
    parse_routes(document)  # never publish a table the gateway would refuse
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(target, orjson.dumps(document, option=orjson.OPT_INDENT_2))


class RouteFile:
    """The table in `path`, reloaded when the file changes; checked with one stat() at most every `interval`
    seconds, so the request path pays a clock read. A missing file is an empty table; a file that does not
    parse keeps the previous table (and is reported once)."""

    def __init__(self, path: str | os.PathLike[str], interval: float = 0.05) -> None:
        self.path = Path(path)
        self.interval = interval
        self.table = RouteTable()
        self._seen: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self.refresh()

    def current(self) -> RouteTable:
        """The table, reloaded first if the check is due and the file changed."""
        if time.monotonic() >= self._next_check:
            self.refresh()
        return self.table

    def refresh(self) -> None:
        self._next_check = time.monotonic() + self.interval
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._seen is not None:
                self._seen, self.table = None, RouteTable()
            return
        # rename() gives a new inode, so an edit within the clock's resolution is still seen
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return
        try:
            self.table = parse_routes(orjson.loads(self.path.read_bytes()))
        except (OSError, orjson.JSONDecodeError, InvalidSpec) as error:
            logger.error("the routing table %s cannot be used, keeping the previous one: %s", self.path, error)
        self._seen = seen
