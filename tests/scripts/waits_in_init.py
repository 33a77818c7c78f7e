"""init() waits until the file named by $RELEASE_INIT exists, so tests see the server while it loads."""

import os
import time


def init():
    deadline = time.monotonic() + 60
    while not os.path.exists(os.environ["RELEASE_INIT"]) and time.monotonic() < deadline:
        time.sleep(0.02)


def run(data):
    return "initialised"
