"""run() never returns when asked to (blocked in C, so no timeout can interrupt it); otherwise returns its pid.

It prints its pid before it blocks, so tests know which worker is stuck.
"""

import json
import os
import threading


def init():
    pass


def run(data):
    if json.loads(data) == "hang":
        print(f"hanging in pid {os.getpid()}")
        threading.Event().wait()
    return {"pid": os.getpid()}
