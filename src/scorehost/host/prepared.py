"""One request's call of run(), made ready by `EntryScript.prepare()`: called alone, or joined to a batch."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scorehost.errors import RunFailed
from scorehost.host.inputs import nested_too_deeply

__all__ = ["Prepared"]


class Prepared:
    """What run() will be called with for one request: `call()` it alone, or hand `value` to run_batch().
    `close()` releases what the input holds (a raw request's spooled upload files)."""

    __slots__ = ("_call", "closes", "headers", "value")

    def __init__(
        self,
        call: Callable[[object, Mapping[str, str] | None], object],
        value: object,
        headers: Mapping[str, str] | None,
        *,
        closes: bool = False,
    ) -> None:
        self._call = call
        self.value = value
        self.headers = headers
        self.closes = closes

    def call(self) -> object:
        try:
            return self._call(self.value, self.headers)
        except RunFailed as failure:
            # A run() that parses the body itself (--run-input body) and hits a RecursionError on a body nested
            # deeper than Python reads was given bad input: the client's error (400), not the script's (500).
            if isinstance(failure.__cause__, RecursionError) and isinstance(self.value, str):
                too_deep = nested_too_deeply(self.value)
                if too_deep is not None:
                    raise too_deep from failure
            raise

    def close(self) -> None:
        if self.closes:
            close = getattr(self.value, "close", None)
            if close is not None:
                close()
