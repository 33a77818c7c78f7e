"""Broken: a numpy.float64 sample decorates fine, but no JSON value is ever a numpy.float64, so every call fails."""

import numpy as np
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("threshold", StandardPythonParameterType(np.float64(0.5)))
def run(threshold):
    return threshold
