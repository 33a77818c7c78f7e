"""Broken: NumpyParameterType given a list instead of a numpy array; inference-schema raises while decorating."""

from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", NumpyParameterType([[1.0, 2.0]]))
def run(data):
    return data
