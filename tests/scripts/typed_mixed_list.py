"""A typed run() whose sample holds a list of mixed types: OpenAPI 2 cannot say that, so only 3 and 3.1 exist."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("row", StandardPythonParameterType(["a", 1, 2.5]))
def run(row):
    return row
