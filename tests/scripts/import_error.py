"""Importing the script raises: the server must exit 3 with the traceback and never serve."""

SETTINGS = {"threshold": 0.5}


def load_threshold():
    return SETTINGS["cutoff"]


THRESHOLD = load_threshold()


def init():
    pass


def run(data):
    return data
