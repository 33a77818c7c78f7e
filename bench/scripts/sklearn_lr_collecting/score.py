"""Benchmark entry script: scripts/sklearn_lr with Azure ML's data collector, as monitoring samples write it.

The inputs (the request's rows) and the outputs (the predictions) go to the `model_inputs` and `model_outputs`
collections, joined by the request's correlation context; with no data collection configured, `collect()`
does nothing.
"""

import json

import numpy as np
from azureml.ai.monitoring import Collector
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

clf: LogisticRegression | None = None
inputs_collector: Collector | None = None
outputs_collector: Collector | None = None


def init() -> None:
    global clf, inputs_collector, outputs_collector
    features, labels = make_classification(n_samples=500, n_features=20, random_state=0)
    clf = LogisticRegression().fit(features, labels)
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")


def run(raw: str) -> list[int]:
    assert clf is not None, "init() has not run"
    assert inputs_collector is not None
    assert outputs_collector is not None
    data = json.loads(raw)["data"]
    context = inputs_collector.collect(data)
    predictions: list[int] = clf.predict(np.asarray(data)).tolist()
    outputs_collector.collect(predictions, context)
    return predictions
