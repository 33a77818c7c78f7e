"""The script imports a module that is not installed: the error names it and how to fix it."""

import scorehost_no_such_module  # noqa: F401


def init():
    pass


def run(data):
    return data
