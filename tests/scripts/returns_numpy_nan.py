"""run() returns a numpy array holding NaN and infinities: sent as NaN, Infinity and -Infinity, not null."""

import numpy as np


def init():
    pass


def run(data):
    return {"array": np.array([0.5, np.nan, np.inf, -np.inf])}
