"""run() sleeps the number of seconds it is given (in C, so a timeout cannot cut it short).

It prints when it starts (so tests know the call is running) and returns its pid and the most
run() calls it has seen running at once in this process (for the --threads tests).
"""

import json
import os
import threading
import time

lock = threading.Lock()
running = 0
peak = 0


def init():
    pass


def run(data):
    global running, peak
    seconds = float(json.loads(data))
    with lock:
        running += 1
        peak = max(peak, running)
    print(f"sleeping {seconds} s")
    try:
        time.sleep(seconds)
    finally:
        with lock:
            running -= 1
    return {"slept": seconds, "pid": os.getpid(), "peak": peak}
