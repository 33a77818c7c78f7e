"""A typed run() with convert_to_provided_type=False: the schema documents, the JSON value arrives as is."""

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])), convert_to_provided_type=False)
def run(data):
    return {"type": type(data).__name__, "data": data}
