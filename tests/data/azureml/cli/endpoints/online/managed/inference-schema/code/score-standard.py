"""Iris classifier with four plain-list parameters, one per measurement."""

import os

import joblib
import numpy as np
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

SPECIES = ["Setosa", "Versicolor", "Virginica"]
classifier = None


def init():
    global classifier
    classifier = joblib.load(os.path.join(os.getenv("AZUREML_MODEL_DIR", ""), "models", "iris.pkl"))


@input_schema(param_name="sepal_length", param_type=StandardPythonParameterType([7.2]))
@input_schema(param_name="sepal_width", param_type=StandardPythonParameterType([3.2]))
@input_schema(param_name="petal_length", param_type=StandardPythonParameterType([6.0]))
@input_schema(param_name="petal_width", param_type=StandardPythonParameterType([1.8]))
@output_schema(output_type=StandardPythonParameterType({"Category": ["Virginica"]}))
def run(sepal_length, sepal_width, petal_length, petal_width):
    rows = np.array([sepal_length, sepal_width, petal_length, petal_width]).T
    chosen = classifier.predict_proba(rows).argmax(axis=1)
    return {"Category": [SPECIES[index] for index in chosen]}
