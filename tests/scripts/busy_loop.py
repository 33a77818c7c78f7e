"""run() keeps working in Python for the number of seconds it is given, so a timeout can cut it short.

It loops in pure Python with 10 ms `time.sleep()` steps: each step returns to the interpreter, which is
where the watchdog's TimeoutError (raised asynchronously in this thread) takes effect, so the request
is answered within a step or two of its deadline. (Compare slow.py, whose one long sleep in C cannot be
interrupted.) It counts the calls that started and those that ran to the end, for the tests.
"""

import json
import time

started = 0
finished = 0


def init():
    pass


def run(data):
    global started, finished
    seconds = float(json.loads(data))
    started += 1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
    finished += 1
    return {"looped": seconds}
