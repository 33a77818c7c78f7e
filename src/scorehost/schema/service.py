"""The request and response schemas (`ServiceInput`, `ServiceOutput`) of a run(), from its decorators' samples."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from scorehost.host.typed import HEADERS_PARAMETER, RunSchema

__all__ = ["ALL_VERSIONS", "UNDECORATED", "service_input", "service_output", "supported_versions"]

JSON = dict[str, Any]

ALL_VERSIONS = ("2", "3", "3.1")
# What the reference documents for a run() without schema: any JSON object.
UNDECORATED: JSON = {"type": "object", "example": {}}
_VERSION_NAMES = {"2.0": "2", "3.0": "3", "3.1": "3.1"}  # inference-schema's names -> the query's


def service_input(schema: RunSchema) -> JSON:
    """One property per run() parameter in signature order, each decorated one with its sample as the example.

    As on the reference, except: `request_headers` is left out (the server fills it from the headers, a body
    key cannot), and an undecorated parameter with a default gets no example value (the reference's `""`
    would replace the default when Swagger UI sends the example), so the example is a request that works.
    """
    parameters = [
        p
        for p in schema.signature.parameters.values()
        if p.name != HEADERS_PARAMETER and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    properties: JSON = {p.name: {} for p in parameters}
    examples: JSON = {p.name: "" for p in parameters if p.default is p.empty}
    for decorator in reversed(schema.inputs):  # innermost first, so the outermost wins, as on the reference
        swagger = copy.deepcopy(decorator.param_type.input_to_swagger())
        examples[decorator.param_name] = swagger.pop("example", None)
        properties[decorator.param_name] = swagger
    example = {name: examples[name] for name in properties if name in examples}
    return {"type": "object", "properties": properties, "example": example}


def service_output(schema: RunSchema, run_function: Callable[..., object]) -> JSON:
    """The `@output_schema` schema (sample included as its example), or any JSON object without one."""
    if not schema.has_output:
        return {"type": "object"}
    # The output decorator keeps its parameter type nowhere but in inference-schema's registry (keyed by
    # `module.function`; one script per process, so the name is this script's).
    from inference_schema.schema_util import get_output_schema  # type: ignore[import-untyped]

    output: JSON = copy.deepcopy(get_output_schema(run_function))
    return output


def supported_versions(schema: RunSchema, output: JSON) -> tuple[str, ...]:
    """The versions every decorator can be described in: OpenAPI 2 has no arrays of mixed item types.

    The reference intersects only the outermost @input_schema's versions with @output_schema's (inference-schema
    overwrites them per decorator), so it offers a Swagger 2 document that misdescribes an inner decorator's
    mixed array; every decorator counts here.
    """
    versions = set(ALL_VERSIONS)
    for decorator in schema.inputs:
        offered = getattr(decorator.param_type, "supported_versions", None)
        if offered is None:  # releases before 1.4 describe every type the same way in each version
            continue
        versions &= {_VERSION_NAMES[v] for v in offered() if v in _VERSION_NAMES}
    if schema.has_output and not _single_typed_arrays(output.get("example")):
        versions.discard("2")
    return tuple(v for v in ALL_VERSIONS if v in versions)


def _single_typed_arrays(value: object) -> bool:
    if isinstance(value, list):
        if any(type(item) is not type(value[0]) for item in value):
            return False
        return all(_single_typed_arrays(item) for item in value)
    if isinstance(value, dict):
        return all(_single_typed_arrays(item) for item in value.values())
    return True
