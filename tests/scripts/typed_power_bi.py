"""The Power BI-compatible shape: run(Inputs, GlobalParameters), a DataFrame inside `Inputs`, `Results` out."""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

INPUT1 = pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 1.5]})


def init():
    pass


@input_schema("Inputs", StandardPythonParameterType({"input1": PandasParameterType(INPUT1)}))
@input_schema("GlobalParameters", StandardPythonParameterType(1.0))
@output_schema(StandardPythonParameterType({"Results": NumpyParameterType(np.array([1.5, 3.5]))}))
def run(Inputs, GlobalParameters):
    frame = Inputs["input1"]
    return {"Results": ((frame["x"] + frame["y"]) * GlobalParameters).tolist()}
