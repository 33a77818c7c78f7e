"""Records each run() call as a file in $CALLS_DIR, so a test can prove that run() was never called."""

import os
import uuid


def init():
    pass


def run(data):
    with open(os.path.join(os.environ["CALLS_DIR"], uuid.uuid4().hex), "w") as record:
        record.write(data)
    return {"received": len(data)}
