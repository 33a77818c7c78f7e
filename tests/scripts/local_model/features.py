"""A sibling module of score.py, imported by plain name."""


def scale(row):
    return [2 * value for value in row]
