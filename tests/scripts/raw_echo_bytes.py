"""@rawhttp over binary bodies: the body's SHA-256 and length as JSON, or with `?echo=1` the body itself.

Nothing is decoded: `request.get_data()` is the body exactly as it arrived, whatever its content type (a
multipart body too, as the script does not touch `request.files` or `request.form`).
"""

import hashlib

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    body = request.get_data()
    if request.args.get("echo") == "1":
        return AMLResponse(body, 200, {"Content-Type": "application/octet-stream"})
    summary = {
        "method": request.method,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": request.content_type,
    }
    return AMLResponse(summary, 200, json_str=True)
