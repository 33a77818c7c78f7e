"""A @rawhttp run() (no schema), for the /swagger.json comparison: raw scripts are described by /score's methods."""

from azureml.contrib.services.aml_request import rawhttp


def init():
    pass


@rawhttp
def run(request):
    return {"method": request.method}
