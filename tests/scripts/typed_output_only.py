"""Only @output_schema: the reference still treats run() as schema-decorated (parameters from the JSON body)."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import output_schema


def init():
    pass


@output_schema(StandardPythonParameterType({"label": "cat", "score": 0.9}))
def run(data):
    return {"label": str(data), "score": 0.5}
