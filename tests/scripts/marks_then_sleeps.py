"""run() writes its pid to the file it is given, then sleeps the seconds it is given: a test knows the request is
running, and in which process, before it kills that process."""

import json
import os
import time
from pathlib import Path


def init():
    pass


def run(data):
    asked = json.loads(data)
    if asked.get("mark"):
        Path(asked["mark"]).write_text(str(os.getpid()))
    time.sleep(float(asked.get("seconds", 0)))
    return {"pid": os.getpid()}
