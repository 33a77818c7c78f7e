"""A published-script style run() whose `json.loads(raw)["data"]` lives in a helper module beside it."""

import helper


def init():
    pass


def run(raw_data):
    data = helper.parse(raw_data)
    return {"rows": len(data), "total": sum(sum(row) for row in data)}
