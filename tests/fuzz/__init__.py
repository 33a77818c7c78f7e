"""The fuzz suite. A package, so that its conftest is imported as `fuzz.conftest` and does not replace
tests/conftest.py as the `conftest` module the other test folders import from."""
