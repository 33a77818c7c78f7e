"""A typed run() written for any inference-schema release: one numpy parameter, `data`, summed per row."""

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
@output_schema(StandardPythonParameterType({"sum": [3.0]}))
def run(data):
    return {"sum": data.sum(axis=1).tolist()}
