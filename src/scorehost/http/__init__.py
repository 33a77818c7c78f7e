"""The scoring server: the host behind HTTP, with request ids, limits, deadlines and supervised workers.

Importing this package loads no HTTP front: `scorehost.http.server` (granian, the supervisor) is imported by
whoever serves; a Ray replica needs only the app (`scorehost.http.factory`).
"""

from __future__ import annotations

from scorehost.http.app import ScoringApp

__all__ = ["ScoringApp"]
