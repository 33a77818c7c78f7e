"""Benchmark entry script: a scikit-learn LogisticRegression on 20 synthetic features.

Written the way published Azure ML scripts are (``run()`` parses the raw body itself), so every
server in the benchmark, the reference ``azmlinfsrv`` included, runs it unchanged. The model is
trained in ``init()`` on fixed data (a few milliseconds), so no model file has to be shipped.
"""

import json

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

clf: LogisticRegression | None = None


def init() -> None:
    global clf
    features, labels = make_classification(n_samples=500, n_features=20, random_state=0)
    clf = LogisticRegression().fit(features, labels)


def run(raw: str) -> list[int]:
    assert clf is not None, "init() has not run"
    data = json.loads(raw)["data"]
    predictions: list[int] = clf.predict(np.asarray(data)).tolist()
    return predictions
