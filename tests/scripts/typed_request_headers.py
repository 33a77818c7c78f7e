"""A typed run() that also takes `request_headers`: the headers are passed through, never read from the body."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType([1.0, 2.0]))
def run(data, request_headers):
    return {"total": sum(data), "custom": request_headers.get("X-Custom")}
