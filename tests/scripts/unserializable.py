"""run() returns an object JSON cannot represent: a distinct 500 that names its type."""


class Opaque:
    pass


def init():
    pass


def run(data):
    return {"result": Opaque()}
