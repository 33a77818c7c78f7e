"""run() parses the whole body as a pandas DataFrame (records or columns), never looking for "data"."""

import json

import pandas as pd


def init():
    pass


def run(body):
    frame = pd.DataFrame(json.loads(body))
    return {"columns": list(frame.columns), "rows": len(frame), "sums": frame.sum().tolist()}
