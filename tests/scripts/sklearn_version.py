"""Answers which scikit-learn (and numpy) its Python environment holds, and where that scikit-learn lives."""

import numpy
import sklearn


def init():
    pass


def run(data):
    return {"sklearn": sklearn.__version__, "numpy": numpy.__version__, "location": sklearn.__file__}
