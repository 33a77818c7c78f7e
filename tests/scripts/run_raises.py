"""run() raises: the answer is a 500 with the message and `x-ms-run-function-failed: True`."""


def init():
    pass


def check(value):
    raise ValueError(f"cannot score {value}")


def run(data):
    return check(data)
