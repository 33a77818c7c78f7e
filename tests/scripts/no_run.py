"""The script has init() but no run()."""


def init():
    pass
