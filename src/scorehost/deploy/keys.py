"""Endpoint keys: made from the OS's randomness, checked in constant time, never shown in logs."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence

__all__ = ["bearer_token", "key_matches", "new_key", "redact"]

_SCHEME = "bearer "


def new_key() -> str:
    """A fresh key: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    if authorization is None or authorization[: len(_SCHEME)].lower() != _SCHEME:
        return None
    token = authorization[len(_SCHEME) :].strip()
    return token or None


def key_matches(presented: str | None, keys: Sequence[str]) -> bool:
    """Whether `presented` equals one of `keys`, in time that depends on neither (every key is compared)."""
    if presented is None:
        presented = ""
    given = presented.encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:
        # No early exit: which slot matched, or that none did, must not show in the timing.
        matched |= hmac.compare_digest(given, key.encode())
    return matched and bool(given)


def redact(key: str) -> str:
    """What logs and listings may show of a key: its first 4 characters."""
    return f"{key[:4]}…" if key else ""
