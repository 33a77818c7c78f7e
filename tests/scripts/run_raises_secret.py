"""run() raises with a connection string in the message: the client must not see it, the log must."""


def init():
    pass


def run(data):
    raise RuntimeError("could not connect to postgresql://admin:hunter2@db/x")
