"""run() expects the body to be one bare row of numbers, e.g. `[1, 2, 3]`."""

import json


def init():
    pass


def run(row):
    values = json.loads(row)
    return {"length": len(values), "total": sum(values)}
