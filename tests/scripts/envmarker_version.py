"""Answers the version of the `envmarker` package its Python environment holds (a wheel the test makes)."""

import envmarker


def init():
    pass


def run(data):
    return {"envmarker": envmarker.VERSION, "location": envmarker.__file__}
