"""run() never returns when asked to (blocked in C, so no timeout can interrupt it); otherwise echoes."""

import json
import os
import threading


def init():
    pass


def run(data):
    if json.loads(data) == "hang":
        threading.Event().wait()
    return {"pid": os.getpid()}
