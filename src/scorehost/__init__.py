"""scorehost: fast, self-hostable serving for Azure ML-style entry scripts (`init()` + `run()`)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
