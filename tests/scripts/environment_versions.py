"""Reports what its Python environment holds: six's version, and whether scorehost's own test tools leak in."""

import importlib.util
import sys


def init():
    pass


def run(data):
    import six

    return {
        "six": six.__version__,
        "pytest_visible": importlib.util.find_spec("pytest") is not None,
        "python": sys.executable,
    }
