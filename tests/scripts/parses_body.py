"""Parses the raw body itself, as most published scripts do (the reference passes run() the whole body)."""

import json


def init():
    pass


def run(raw):
    return {"rows": len(json.loads(raw)["data"])}
