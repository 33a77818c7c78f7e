"""@rawhttp that streams: the reply's body is a generator, sent chunk by chunk as it is produced.

`POST /score?gate=<path>&chunks=<n>` answers `first\n`, then waits until the file `<path>` exists (the test
creates it once it has read the first chunk), then yields `chunk <i>\n` for i in 1..n with a short sleep
before each, and `last\n`. Had the server buffered the body, the client would never see `first` before
creating the file, and the generator would give up after 20 s with `gate timed out\n`.

`?kind=werkzeug` returns a plain Werkzeug `Response` instead of an `AMLResponse`; both stream.
"""

import os
import time

from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from werkzeug.wrappers import Response

GATE_TIMEOUT_S = 20.0


def init():
    pass


def _chunks(gate, count):
    yield b"first\n"
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            yield b"gate timed out\n"
            return
        time.sleep(0.01)
    for index in range(1, count + 1):
        time.sleep(0.005)
        yield f"chunk {index}\n".encode()
    yield b"last\n"


@rawhttp
def run(request):
    body = _chunks(request.args.get("gate", ""), int(request.args.get("chunks", "3")))
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-Stream": "yes"}
    if request.args.get("kind") == "werkzeug":
        return Response(body, status=200, headers=headers)
    return AMLResponse(body, 200, headers)
