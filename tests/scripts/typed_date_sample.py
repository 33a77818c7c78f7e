"""A typed run() with a date sample: inference-schema 1.8 cannot parse dates (it calls date.strptime); we can."""

import datetime

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("day", StandardPythonParameterType(datetime.date(2024, 1, 31)))
def run(day):
    return {"weekday": day.strftime("%A")}
