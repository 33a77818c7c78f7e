"""A typed run(): NumpyParameterType in and out; a tiny LogisticRegression is trained in init().

The class is whether the two features sum to a positive number.
"""

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema
from sklearn.linear_model import LogisticRegression


def init():
    global model
    features = np.array([[-2.0, -1.0], [-1.0, -1.5], [-0.5, -2.0], [2.0, 1.0], [1.0, 1.5], [0.5, 2.0]])
    model = LogisticRegression().fit(features, [0, 0, 0, 1, 1, 1])


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0], [-1.0, -0.5]])))
@output_schema(NumpyParameterType(np.array([1, 0])))
def run(data):
    return model.predict(data).tolist()
