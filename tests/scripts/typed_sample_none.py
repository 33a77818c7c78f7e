"""Broken: a StandardPythonParameterType without a sample (None); inference-schema raises while decorating."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType(None))
def run(data):
    return data
