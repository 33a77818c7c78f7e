"""A typed run(): PandasParameterType with records orient; run() receives a DataFrame with the sample's dtypes."""

import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

SAMPLE = pd.DataFrame({"age": [35, 52], "income": [42000.0, 61000.5], "city": ["Oslo", "Lima"]})


def init():
    pass


@input_schema("frame", PandasParameterType(SAMPLE))
@output_schema(StandardPythonParameterType([1200.0, 1173.09]))
def run(frame):
    return (frame["income"] / frame["age"]).round(2).tolist()
