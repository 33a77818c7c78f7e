"""The scoring server: the host behind HTTP, with request ids, limits, deadlines and supervised workers."""

from __future__ import annotations

from scorehost.http.app import ScoringApp
from scorehost.http.server import serve

__all__ = ["ScoringApp", "serve"]
