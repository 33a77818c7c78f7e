"""Broken: @input_schema names a parameter run() does not have (`input`, run() takes `data`)."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("input", StandardPythonParameterType([1, 2]))
def run(data):
    return data
