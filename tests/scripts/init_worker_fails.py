"""init_worker() raises: each worker's own step fails, so the server cannot serve."""


def init():
    pass


def init_worker():
    raise RuntimeError("CUDA error: out of memory (a stand-in)")


def run(data):
    return data
