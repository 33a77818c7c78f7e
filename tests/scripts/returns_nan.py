"""run() returns floats JSON has no literal for: sent as NaN, Infinity and -Infinity, as the reference does."""


def init():
    pass


def run(data):
    return {"x": float("nan"), "y": float("inf"), "z": -float("inf"), "a": [1.5, float("nan")]}
