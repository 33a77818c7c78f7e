"""Opts in to batching with run_batch(): each answer says how many requests its call held.

A body's "data" may be {"sleep": S} (the call sleeps S seconds, in C), "bad" (fails: run() raises, and
run_batch() raises for the whole batch), or "seen" (answers every input this worker has run, in order).
"""

import json
import time

seen = []


def init():
    pass


def _sleep(items):
    time.sleep(max((item["sleep"] for item in items if isinstance(item, dict) and "sleep" in item), default=0))


def run(data):
    item = json.loads(data)
    if item == "seen":
        return seen
    seen.append(item)
    _sleep([item])
    if item == "bad":
        raise ValueError("a bad input")
    return {"echo": item, "batch": 1}


def run_batch(inputs):
    items = [json.loads(text) for text in inputs]
    seen.extend(items)
    _sleep(items)
    if "bad" in items:
        raise ValueError("a bad input in the batch")
    return [{"echo": item, "batch": len(items)} for item in items]
