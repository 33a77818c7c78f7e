"""Who is signed in to the console: sessions, their CSRF tokens, and one-time sign-in links.

Everything lives in the control plane's memory: a restart signs everyone out, which is the safe way to
lose it. Identifiers are 256-bit random strings, looked up by their SHA-256 so that a timing difference
in the dictionary lookup tells nothing about a valid one; CSRF tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

__all__ = ["Session", "SignIns"]

SESSION_SECONDS = 12 * 3600  # a working day, then sign in again
LINK_SECONDS = 120  # a printed link is meant to be opened at once
_MAX_SESSIONS = 1000  # a flood of sign-ins cannot grow the process without bound


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its CSRF token goes in every form and every script request that changes state."""

    csrf: str
    expires: float

    def csrf_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())


class SignIns:
    """Sessions by cookie value, and unused one-time links; safe across the API server's threads."""

    def __init__(self, session_seconds: float = SESSION_SECONDS, link_seconds: float = LINK_SECONDS) -> None:
        self._session_seconds = session_seconds
        self._link_seconds = link_seconds
        self._sessions: dict[str, Session] = {}
        self._links: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> tuple[str, Session]:
        """A new session: the cookie value to set, and the session."""
        cookie = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), time.monotonic() + self._session_seconds)
        with self._lock:
            self._forget_expired()
            if len(self._sessions) >= _MAX_SESSIONS:  # the oldest go first
                for key in sorted(self._sessions, key=lambda k: self._sessions[k].expires)[: _MAX_SESSIONS // 10]:
                    del self._sessions[key]
            self._sessions[_digest(cookie)] = session
        return cookie, session

    def session(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None."""
        if not cookie:
            return None
        with self._lock:
            session = self._sessions.get(_digest(cookie))
            if session is not None and session.expires < time.monotonic():
                del self._sessions[_digest(cookie)]
                return None
            return session

    def end(self, cookie: str | None) -> None:
        if cookie:
            with self._lock:
                self._sessions.pop(_digest(cookie), None)

    def new_link(self) -> str:
        """A code for `/console/signin/CODE`: good once, for `LINK_SECONDS`."""
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired()
            self._links[_digest(code)] = time.monotonic() + self._link_seconds
        return code

    def use_link(self, code: str) -> bool:
        """Whether `code` is a live link; it is spent either way."""
        with self._lock:
            expires = self._links.pop(_digest(code), None)
        return expires is not None and expires >= time.monotonic()

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]
        for key in [k for k, expires in self._links.items() if expires < now]:
            del self._links[key]
