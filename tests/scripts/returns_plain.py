"""run() returns the plain Python value named by its input: None, a str, a str holding JSON, bytes, a tuple."""

import json

VALUES = {
    "none": None,
    "string": "hello",
    "json-string": '{"already": "json"}',
    "bytes": b"\x00\x01binary",
    "tuple": (1, "two"),
    "unicode": {"text": "caf\u00e9 \u2603"},
}


def init():
    pass


def run(data):
    return VALUES[json.loads(data)]
