"""run() returns numpy and pandas objects as they are, with no conversion: the server encodes them."""

import numpy as np
import pandas as pd


def init():
    pass


def run(data):
    return {
        "array": np.arange(6).reshape(2, 3) * 0.5,
        "ints": np.array([1, 2, 3], dtype=np.int32),
        "scalar": np.float32(1.5),
        "count": np.int64(7),
        "flag": np.bool_(True),
        "series": pd.Series([1, 2]),
        "frame": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
    }
