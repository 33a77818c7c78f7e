"""Model names, aliases and references (`name`, `name:3`, `name:production`), validated.

Names become folder names under `AZUREML_MODEL_DIR`, so they are checked before anything touches a
path: letters, digits, `.`, `_` and `-`, starting with a letter or digit (Azure ML's own rule), which
rules out `..`, slashes and absolute paths by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scorehost.errors import InvalidModelReference

__all__ = ["LATEST", "MAX_VERSION", "ModelRef", "check_alias", "check_name", "parse_ref", "parse_version"]

LATEST = "latest"
"""The alias every model has: its highest version. It cannot be set or removed."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes '²' and '٣', which int() refuses or reads

MAX_VERSION = 2**31 - 1
"""The highest version number: the column is a 32-bit integer on PostgreSQL (SQLite's stops at 2**63 - 1)."""


def check_name(name: str) -> str:
    """`name` if it can name a model, else InvalidModelReference saying what is allowed."""
    if not _NAME.fullmatch(name):
        raise InvalidModelReference(
            f"{name!r} is not a valid model name: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 255 characters"
        )
    return name


def check_alias(alias: str) -> str:
    """`alias` if it can name an alias: a model name that is not a number and not `latest`."""
    if not _NAME.fullmatch(alias) or _DIGITS.fullmatch(alias):
        raise InvalidModelReference(
            f"{alias!r} is not a valid alias: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit and not all digits (a number means a version)"
        )
    if alias == LATEST:
        raise InvalidModelReference("'latest' always means the highest version; choose another alias name")
    return alias


def parse_version(text: str | int) -> int:
    """A version number (1, 2, ... MAX_VERSION) from `3` or `"3"`."""
    value = str(text).strip()
    # Length first: int() of a 5,000-digit string raises ValueError (Python's limit on digit strings).
    too_long = len(value.lstrip("0")) > len(str(MAX_VERSION))
    if not _DIGITS.fullmatch(value) or too_long or not 1 <= int(value) <= MAX_VERSION:
        raise InvalidModelReference(f"{text!r} is not a version: versions are whole numbers from 1 to {MAX_VERSION}")
    return int(value)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference: a model name and a version, an alias, or neither (the latest version)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}:{self.alias}" if self.alias else self.name


def parse_ref(text: str) -> ModelRef:
    """`name` (latest), `name:3` (a version), `name:production` or `name:latest` (an alias)."""
    name, sep, selector = text.strip().partition(":")
    check_name(name)
    if not sep:
        return ModelRef(name)
    if not selector:
        raise InvalidModelReference(f"{text!r} ends with ':'; write NAME, NAME:VERSION or NAME:ALIAS")
    if _DIGITS.fullmatch(selector):
        return ModelRef(name, version=parse_version(selector))
    if selector == LATEST:
        return ModelRef(name)
    return ModelRef(name, alias=check_alias(selector))
