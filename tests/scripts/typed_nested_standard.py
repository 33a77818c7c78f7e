"""A typed run(): a StandardPythonParameterType dict whose members are parameter types themselves.

`readings` arrives as a numpy array, `window` as a checked dict, `tags` as a list of checked strings;
`name` is not a parameter type, so it is passed through unchecked.
"""

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

REQUEST = StandardPythonParameterType(
    {
        "name": "sensor-1",
        "readings": NumpyParameterType(np.array([[1.0, 2.0, 3.0]])),
        "window": StandardPythonParameterType({"size": 3, "scale": 1.5}),
        "tags": StandardPythonParameterType([StandardPythonParameterType("outdoor")]),
    }
)


def init():
    pass


@input_schema("request", REQUEST)
@output_schema(StandardPythonParameterType({"name": "sensor-1", "mean": 3.0, "tags": ["outdoor"]}))
def run(request):
    mean = float(request["readings"].mean()) * request["window"]["scale"]
    return {"name": request["name"], "mean": mean, "tags": request["tags"]}
