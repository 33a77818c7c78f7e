"""Answers with the DEPLOYMENT_NAME its environment was given and its pid, so tests can see where traffic went."""

import os


def init():
    pass


def run(data):
    return {"deployment": os.environ.get("DEPLOYMENT_NAME", "?"), "pid": os.getpid(), "received": data}
