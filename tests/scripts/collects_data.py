"""Azure ML's data-collector sample: inputs and outputs collected as DataFrames, joined by the request's context."""

import json

import pandas as pd
from azureml.ai.monitoring import Collector


def init():
    global inputs_collector, outputs_collector
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs", on_error=lambda error: print(f"collector: {error}"))


def run(data):
    df = pd.DataFrame(json.loads(data)["data"])
    context = inputs_collector.collect(df)
    out = pd.DataFrame({"total": df.sum(axis=1)})
    outputs_collector.collect(out, context)
    return out.to_dict()
