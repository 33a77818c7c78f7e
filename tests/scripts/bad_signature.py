"""run() takes *args, which the server cannot map the request onto."""


def init():
    pass


def run(*args):
    return args
