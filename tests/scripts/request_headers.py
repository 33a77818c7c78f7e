"""run(data, request_headers) gets the request's headers, Title-Case keys, as the reference passes them."""


def init():
    pass


def run(data, request_headers):
    return {"data": data, "headers": request_headers, "lower_case_lookup": request_headers.get("x-custom")}
