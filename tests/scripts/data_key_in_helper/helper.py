"""Parses the raw body the way published scripts do: the whole body, then its `["data"]`."""

import json


def parse(raw):
    return json.loads(raw)["data"]
