"""A published-script style run(): parses the raw body itself and indexes `["data"]`."""

import json


def init():
    pass


def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {"rows": len(data), "total": sum(sum(row) for row in data)}
