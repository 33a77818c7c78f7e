"""@rawhttp with run_batch(): every answer streams (a generator body), and says how many requests its call held.

`?name=<n>` names the request in its answer. `?sleep=<s>` makes the call sleep s seconds (to hold the worker
while other requests queue). `?gate=<path>` holds the stream after its first line until the file `<path>`
exists (20 s at most): a slow reader, whose answer must not keep the rest of its batch waiting.
"""

import os
import time

from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

GATE_TIMEOUT_S = 20.0


def init():
    pass


def _lines(name, gate, size):
    yield f"{name} first\n".encode()
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            yield b"gate timed out\n"
            return
        time.sleep(0.01)
    yield f"{name} last, batch of {size}\n".encode()


def _answer(request, size):
    body = _lines(request.args.get("name", ""), request.args.get("gate", ""), size)
    return AMLResponse(body, 200, {"Content-Type": "text/plain; charset=utf-8"})


@rawhttp
def run(request):
    time.sleep(float(request.args.get("sleep", "0")))
    return _answer(request, 1)


def run_batch(requests):
    time.sleep(max(float(request.args.get("sleep", "0")) for request in requests))
    return [_answer(request, len(requests)) for request in requests]
