"""Schemathesis over a server's own OpenAPI document: each operation, with data that fits it and data that does not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import requests
import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation

from fuzz._tally import Recorder, fuzz_settings

__all__ = ["Check", "fuzz_operations", "operations"]

Check = Callable[[Any, requests.Response], None]  # (the schemathesis Case, the answer)


def operations(document: dict[str, Any]) -> Iterator[APIOperation]:
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        yield result.ok()


def _takes_input(operation: APIOperation) -> bool:
    """Whether negative data can be made for it: a body, a query or a path parameter (headers are ours)."""
    return any(len(part) for part in (operation.path_parameters, operation.query, operation.body))


def fuzz_operations(
    document: dict[str, Any],
    base_url: str,
    recorder: Recorder,
    check: Check,
    *,
    max_examples: int,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> None:
    """Call every operation of `document` at `base_url`, `max_examples` positive and as many negative cases each
    (fewer where the space is smaller), and `check` every answer."""
    client = session or requests.Session()
    for operation in operations(document):
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if _takes_input(operation) else [])
        for mode in modes:

            def call(case: Any) -> None:
                recorder.case()
                answer = case.call(base_url=base_url, session=client, headers=headers, timeout=30)
                recorder.answer(answer.status_code)
                check(case, answer)

            strategy = operation.as_strategy(generation_mode=mode, headers=headers)
            try:
                fuzz_settings(max_examples)(given(case=strategy)(call))()
            except Unsatisfiable:
                # Nothing of it can be invalid: a raw run()'s body of any content type, and no key (scorehost
                # serve's documents declare none) to send wrong.
                if mode is not GenerationMode.NEGATIVE:
                    raise
