"""Iris classifier that takes a DataFrame, `iris`, described by inference-schema's pandas type."""

import os

import joblib
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

SPECIES = ["Setosa", "Versicolor", "Virginica"]
SAMPLE = pd.DataFrame({"sepal_length": [7.2], "sepal_width": [3.2], "petal_length": [6.0], "petal_width": [1.8]})
classifier = None


def init():
    global classifier
    classifier = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR", ""), "models", "iris.pkl"))


@input_schema(param_name="iris", param_type=PandasParameterType(SAMPLE))
@output_schema(output_type=StandardPythonParameterType({"Category": ["Virginica"]}))
def run(iris):
    chosen = classifier.predict_proba(iris.to_numpy()).argmax(axis=1)
    return {"Category": [SPECIES[index] for index in chosen]}
