"""scorehost: fast, self-hostable serving for Azure ML-style entry scripts (`init()` + `run()`)."""

from __future__ import annotations

# Not typing.TYPE_CHECKING: `import scorehost` stays free of the typing module (type checkers key on the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from scorehost.client import AsyncClient, Client
    from scorehost.compat import AMLRequest, AMLResponse, rawhttp
    from scorehost.host.batch import batch
    from scorehost.registry import Registry

__version__ = "0.1.0"

__all__ = ["AMLRequest", "AMLResponse", "AsyncClient", "Client", "Registry", "__version__", "batch", "rawhttp"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: AMLRequest and AMLResponse import werkzeug, which the CLI need not pay for.
    if name in ("AMLRequest", "AMLResponse", "rawhttp"):
        import scorehost.compat

        return getattr(scorehost.compat, name)
    if name in ("AsyncClient", "Client"):
        import scorehost.client

        return getattr(scorehost.client, name)
    if name == "batch":
        from scorehost.host.batch import batch

        return batch
    if name == "Registry":
        from scorehost.registry import Registry

        return Registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
