"""The benchmark's entry script (scripts/sklearn_lr) with run_batch(): the same model, the same answers; under
concurrent load scorehost hands it the rows of several requests at once, and the model predicts them in one
call. Unchanged elsewhere: a server that knows nothing of run_batch() calls run().
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


def run_batch(raws: list[str]) -> list[list[int]]:
    assert clf is not None, "init() has not run"
    rows = [json.loads(raw)["data"] for raw in raws]
    counts = [len(request) for request in rows]
    predictions: list[int] = clf.predict(np.concatenate([np.asarray(r) for r in rows])).tolist()
    answers, start = [], 0
    for count in counts:
        answers.append(predictions[start : start + count])
        start += count
    return answers
