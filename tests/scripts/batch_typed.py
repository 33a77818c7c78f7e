"""A typed run() (inference-schema) with run_batch(): run_batch() gets the converted numpy arrays, and
@scorehost.batch sets its limits (the decorator is optional; the script still runs where scorehost is not).
Rows that sum below zero make the call sleep 0.4 s per unit below (tests hold the worker with them)."""

import time

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.schema_decorators import input_schema, output_schema

try:
    from scorehost import batch
except ImportError:  # elsewhere (Azure ML), run() alone serves

    def batch(**_limits):
        return lambda function: function


def init():
    pass


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
@output_schema(NumpyParameterType(np.array([3.0])))
def run(data):
    if data.sum() < 0:
        time.sleep(0.4 * min(-float(data.sum()), 10.0))
    return {"sums": data.sum(axis=1).tolist(), "batch": 1, "type": type(data).__name__}


@batch(max_batch_size=4, max_wait_ms=50)
def run_batch(inputs):
    return [{"sums": rows.sum(axis=1).tolist(), "batch": len(inputs), "type": type(rows).__name__} for rows in inputs]
