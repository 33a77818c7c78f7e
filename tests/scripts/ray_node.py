"""Answers with the id of the Ray node its replica runs on (for the two-node test; needs Ray)."""

import ray


def init():
    global node
    node = ray.get_runtime_context().get_node_id()


def run(data):
    return {"node": node}
