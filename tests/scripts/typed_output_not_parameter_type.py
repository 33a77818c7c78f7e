"""Broken: @output_schema given a plain dict instead of a parameter type; inference-schema raises while decorating."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType([1, 2]))
@output_schema({"result": 1})
def run(data):
    return {"result": sum(data)}
