"""run() writes to the log with print() and with the logging module."""

import logging

logger = logging.getLogger("prints_script")


def init():
    print("hello from init")


def run(data):
    print(f"hello from run: {data}")
    logger.warning("logged from run")
    return "printed"
