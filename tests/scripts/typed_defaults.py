"""A typed run() with defaults: `limit` is optional=True (missing or falsy: not converted), `label` undecorated."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType([1, 2, 3]))
@input_schema("limit", StandardPythonParameterType(10), optional=True)
def run(data, limit=10, label="items"):
    return {"label": label, "limit": limit, "items": data[: limit or None]}
