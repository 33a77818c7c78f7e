"""Echoes what run() receives, so tests can see the input rule at work."""


def init():
    pass


def run(data):
    return {"received": data}
