"""run() holds the GIL in C for the number of seconds it is given; otherwise returns its pid.

It calls libc's sleep() through `ctypes.PyDLL`, which (unlike `ctypes.CDLL`) keeps the GIL during the
call: like a C extension that never releases it, or a catastrophic regular expression
(`re.match(r"(a+)+$", "a" * 40 + "b")`), no other thread of the worker runs meanwhile, the run gate's
watchdog and the worker's heartbeat included. It prints its pid first, so tests know which worker.
"""

import ctypes
import json
import os

_libc = ctypes.PyDLL(None)


def init():
    pass


def run(data):
    seconds = json.loads(data)
    if seconds:
        print(f"holding the GIL for {seconds} s in pid {os.getpid()}", flush=True)
        _libc.sleep(int(seconds))
    return {"pid": os.getpid()}
