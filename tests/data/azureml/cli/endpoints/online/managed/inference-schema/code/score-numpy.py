"""Iris classifier with a typed run(): one numpy parameter, `iris`, described by inference-schema."""

import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

SPECIES = ["Setosa", "Versicolor", "Virginica"]
classifier = None


def init():
    global classifier
    classifier = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR", ""), "models", "iris.pkl"))


@input_schema(param_name="iris", param_type=NumpyParameterType(np.array([[7.2, 3.2, 6.0, 1.8]])))
@output_schema(output_type=StandardPythonParameterType({"Category": ["Virginica"]}))
def run(iris):
    chosen = classifier.predict_proba(iris).argmax(axis=1)
    return {"Category": [SPECIES[index] for index in chosen]}
