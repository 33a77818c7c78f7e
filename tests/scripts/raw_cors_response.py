"""@rawhttp with CORS set by the script itself on every AMLResponse (the documentation's pre-0.7.3 method).

OPTIONS (a browser's preflight) is answered by run() itself; POST creates: 201 with the JSON body echoed back;
GET answers 200 with the query parameters. The comma-separated header values go out as repeated lines.
"""

from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Allow": "GET, POST, OPTIONS",
}


def init():
    pass


@rawhttp
def run(request):
    if request.method == "OPTIONS":
        return AMLResponse("", 200, CORS)
    if request.method == "POST":
        body = request.get_json()
        return AMLResponse({"created": body}, 201, CORS, json_str=True)
    if request.method == "GET":
        return AMLResponse({"query": request.args.to_dict()}, 200, CORS, json_str=True)
    return AMLResponse(f"{request.method} not allowed", 405, CORS)
