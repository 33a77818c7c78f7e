"""A typed run() whose parameter type is the script's own AbstractParameterType subclass: a point "x,y" string or
[x, y] list becomes a complex number; anything else is refused by the type (a 400 naming `point`)."""

from inference_schema.parameter_types.abstract_parameter_type import AbstractParameterType
from inference_schema.schema_decorators import input_schema


class ComplexParameterType(AbstractParameterType):
    def deserialize_input(self, input_data):
        if isinstance(input_data, str):
            input_data = [float(part) for part in input_data.split(",")]
        if not isinstance(input_data, list) or len(input_data) != 2:
            raise ValueError(f"expected [x, y] or 'x,y', got {input_data!r}")
        return complex(float(input_data[0]), float(input_data[1]))

    def input_to_swagger(self):
        return {
            "type": "array",
            "items": {"type": "number", "format": "double"},
            "example": [self.sample_input.real, self.sample_input.imag],
        }


def init():
    pass


@input_schema("point", ComplexParameterType(complex(3.0, 4.0)))
def run(point):
    return {"magnitude": abs(point), "type": type(point).__name__}
