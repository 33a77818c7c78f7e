"""A typed run() that never raises for a value its decorators converted: numpy, standard and pandas parameters in,
a summary of what arrived out. Fuzzing it, any 5xx is scorehost's, never the script's."""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0], [-1.0, -0.5]])))
@input_schema("options", StandardPythonParameterType({"scale": 1.5, "label": "x", "tags": ["a"]}), optional=True)
@input_schema("frame", PandasParameterType(pd.DataFrame({"age": [35], "city": ["Oslo"]})), optional=True)
def run(data, options=None, frame=None):
    return {
        "shape": list(getattr(data, "shape", ())),
        "options": options,
        "rows": None if frame is None else len(frame),
    }
