"""One request's call of run(), made ready by `EntryScript.prepare()`: called alone, or joined to a batch."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
        return self._call(self.value, self.headers)

    def close(self) -> None:
        if self.closes:
            close = getattr(self.value, "close", None)
            if close is not None:
                close()
