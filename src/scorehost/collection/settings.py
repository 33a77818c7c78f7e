"""What to collect and where to keep it: `CollectionSettings`, frozen, checked, and as JSON for specs and env vars.

Secret headers (credentials, cookies, keys, tokens) are never captured, whatever `capture_headers` asks:
construction drops them and keeps their names in `refused_headers`, so start-up can warn.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from scorehost.collection.layout import ROLLING_RATES, is_collection_name
from scorehost.errors import InvalidSpec

__all__ = ["CollectionRule", "CollectionSettings", "is_secret_header"]

_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "ocp-apim-subscription-key",
    }
)
_SECRET_WORDS = ("token", "secret", "password", "credential", "apikey")
_SECRET_ENDINGS = ("-key", "-auth")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def is_secret_header(name: str) -> bool:
    """Whether a header may carry a credential; such headers are never written to collected data."""
    name = name.strip().lower()
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS) or name.endswith(_SECRET_ENDINGS)


def _rate(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidSpec(f"{where} must be a number from 0 to 1 (0.1 keeps one row in ten), not {value!r}")
    return float(value)


def _positive(value: object, where: str, *, optional: bool = False, integer: bool = True) -> None:
    if optional and value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
        or not 0 < value < math.inf
    ):
        what = "a whole number" if integer else "a number"
        none = " or null (no limit)" if optional else ""
        raise InvalidSpec(f"{where} must be {what} greater than 0{none}, not {value!r}")


@dataclass(frozen=True)
class CollectionRule:
    """One collection's switch and sampling rate (multiplied by the overall rate)."""

    enabled: bool = True
    sampling_rate: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InvalidSpec(f"data collection: enabled must be true or false, not {self.enabled!r}")
        object.__setattr__(self, "sampling_rate", _rate(self.sampling_rate, "data collection: sampling_rate"))


@dataclass(frozen=True)
class CollectionSettings:
    """Where collected rows go and which: `collections` empty means every collection (request, response and
    each name a script's Collector uses); otherwise only the named, enabled ones."""

    directory: Path
    collections: Mapping[str, CollectionRule] = field(default_factory=dict, hash=False)  # read-only once built
    sampling_rate: float = 1.0
    capture_headers: tuple[str, ...] = ()
    rolling_rate: str = "Hour"
    max_payload_bytes: int = 256 * KIB
    max_age_seconds: float | None = 30 * 86400.0
    max_bytes: int | None = 5 * GIB
    queue_rows: int = 10_000
    queue_bytes: int = 64 * MIB
    sync_seconds: float = 1.0  # fsync the files this often (what a machine crash can lose); 0: never
    source: str = ""
    model_version: str = "default"
    deployment_version: str = ""  # the deployment's generation, when a control plane runs it
    refused_headers: tuple[str, ...] = field(default=(), init=False)
    _capture: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are stored once, here
        if not isinstance(self.directory, str | Path) or not str(self.directory).strip():
            raise InvalidSpec("data collection: directory must name a folder (an absolute path, or ~/...)")
        set_(self, "directory", Path(self.directory).expanduser().resolve())
        if not isinstance(self.collections, Mapping):
            raise InvalidSpec("data collection: collections must map collection names to rules")
        rules: dict[str, CollectionRule] = {}
        for name, rule in self.collections.items():
            if not isinstance(name, str) or not is_collection_name(name):
                raise InvalidSpec(
                    f"data collection: collection name {name!r} cannot be used: it becomes a folder name, so use "
                    "letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')"
                )
            if not isinstance(rule, CollectionRule):
                raise InvalidSpec(f"data collection: collections[{name!r}] must be a CollectionRule")
            rules[name] = rule
        set_(self, "collections", types.MappingProxyType(rules))
        set_(self, "sampling_rate", _rate(self.sampling_rate, "data collection: sampling_rate"))
        self._set_headers()
        rate = next((name for name in ROLLING_RATES if name.lower() == str(self.rolling_rate).lower()), None)
        if rate is None:
            raise InvalidSpec(
                f"data collection: rolling_rate must be one of {', '.join(ROLLING_RATES)}, not {self.rolling_rate!r}"
            )
        set_(self, "rolling_rate", rate)
        for name in ("max_payload_bytes", "queue_rows", "queue_bytes"):
            _positive(getattr(self, name), f"data collection: {name}")
        _positive(self.max_bytes, "data collection: max_bytes", optional=True)
        _positive(self.max_age_seconds, "data collection: max_age_seconds", optional=True, integer=False)
        if (
            isinstance(self.sync_seconds, bool)
            or not isinstance(self.sync_seconds, int | float)
            or self.sync_seconds < 0
        ):
            raise InvalidSpec(
                f"data collection: sync_seconds must be a number of seconds, 0 or more, not {self.sync_seconds!r}"
            )
        for name in ("source", "model_version", "deployment_version"):
            if not isinstance(getattr(self, name), str):
                raise InvalidSpec(f"data collection: {name} must be text, not {getattr(self, name)!r}")

    def _set_headers(self) -> None:
        if isinstance(self.capture_headers, str) or not all(isinstance(h, str) for h in self.capture_headers):
            raise InvalidSpec("data collection: capture_headers must be a list of header names")
        kept: list[str] = []
        refused: list[str] = []
        for header in self.capture_headers:
            name = header.strip().lower()
            if not _TOKEN.fullmatch(name):
                raise InvalidSpec(f"data collection: capture_headers: {header!r} is not a header name")
            if name not in kept and name not in refused:
                (refused if is_secret_header(name) else kept).append(name)
        object.__setattr__(self, "capture_headers", tuple(kept))
        object.__setattr__(self, "refused_headers", tuple(refused))
        object.__setattr__(self, "_capture", frozenset(kept))

    def rate(self, name: str) -> float:
        """The share of `name`'s rows to keep: 0.0 when it is disabled, or not named while others are."""
        rule = self.collections.get(name)
        if rule is None:
            return self.sampling_rate if not self.collections else 0.0
        return self.sampling_rate * rule.sampling_rate if rule.enabled else 0.0

    def capture_header_names(self) -> frozenset[str]:
        """The lower-case names of the headers to write with request and response rows; never a secret one."""
        return self._capture

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that `from_json` reads back; `capture_headers` lists the refused ones too, so the
        side that reads it warns about them again."""
        return {
            "directory": str(self.directory),
            "collections": {
                name: {"enabled": rule.enabled, "sampling_rate": rule.sampling_rate}
                for name, rule in self.collections.items()
            },
            "sampling_rate": self.sampling_rate,
            "capture_headers": [*self.capture_headers, *self.refused_headers],
            "rolling_rate": self.rolling_rate,
            "max_payload_bytes": self.max_payload_bytes,
            "max_age_seconds": self.max_age_seconds,
            "max_bytes": self.max_bytes,
            "queue_rows": self.queue_rows,
            "queue_bytes": self.queue_bytes,
            "sync_seconds": self.sync_seconds,
            "source": self.source,
            "model_version": self.model_version,
            "deployment_version": self.deployment_version,
        }

    @classmethod
    def from_json(cls, value: object) -> CollectionSettings:
        """Settings from `to_json`'s dict (or a subset: `directory` is required); unknown keys are refused."""
        if not isinstance(value, Mapping):
            raise InvalidSpec("data collection settings must be a JSON object with at least a directory")
        known = set(_FIELDS)
        unknown = sorted(str(key) for key in value if key not in known)
        if unknown:
            raise InvalidSpec(
                f"data collection: unknown setting {', '.join(map(repr, unknown))}; "
                f"the settings are {', '.join(sorted(known))}"
            )
        if "directory" not in value:
            raise InvalidSpec("data collection: directory is required (the folder that receives the rows)")
        kwargs = dict(value)
        if "collections" in kwargs:
            kwargs["collections"] = _rules(kwargs["collections"])
        if "capture_headers" in kwargs:
            headers = kwargs["capture_headers"]
            if not isinstance(headers, list | tuple):
                raise InvalidSpec("data collection: capture_headers must be a list of header names")
            kwargs["capture_headers"] = tuple(headers)
        return cls(**kwargs)


_FIELDS = tuple(f.name for f in fields(CollectionSettings) if f.init)


def _rules(value: object) -> dict[str, CollectionRule]:
    if not isinstance(value, Mapping):
        raise InvalidSpec('data collection: collections must be an object: {"model_inputs": {"enabled": true}}')
    rules: dict[str, CollectionRule] = {}
    for name, rule in value.items():
        if not isinstance(rule, Mapping):
            raise InvalidSpec(f'data collection: collections[{name!r}] must be an object: {{"enabled": true}}')
        unknown = sorted(str(key) for key in rule if key not in ("enabled", "sampling_rate"))
        if unknown:
            raise InvalidSpec(
                f"data collection: collections[{name!r}]: unknown setting {', '.join(map(repr, unknown))}; "
                "a collection takes enabled and sampling_rate"
            )
        enabled = rule.get("enabled", True)
        if isinstance(enabled, str) and enabled.lower() in ("true", "false"):
            enabled = enabled.lower() == "true"  # Azure ML's YAML writes enabled: 'True'
        try:
            rules[name] = CollectionRule(enabled=enabled, sampling_rate=rule.get("sampling_rate", 1.0))
        except InvalidSpec as exc:
            raise InvalidSpec(
                exc.message.replace("data collection:", f"data collection: collections[{name!r}]:")
            ) from None
    return rules
