"""A process that writes collected rows, for the writer tests: python _collection_child.py MODE DIRECTORY [ARG].

write N      N rows of varied sizes (some large), then close; prints the writer's stats as JSON
forever      rows until killed; prints "ready" once the first rows are on disk
fsize LIMIT  under `ulimit -f` LIMIT bytes: rows that fit, rows that cross the limit, rows for another file
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

from scorehost.collection import CollectionSettings, CollectionWriter, ObjectRow

T = 1669884690.0  # one fixed partition: every phase appends to the same file


def stats(writer: CollectionWriter) -> None:
    current = writer.stats()
    dropped = {f"{collection}/{reason}": n for (collection, reason), n in current.dropped.items()}
    print(json.dumps({"written": dict(current.written), "dropped": dropped, "pid": os.getpid()}), flush=True)


def main() -> None:
    mode, directory = sys.argv[1], Path(sys.argv[2])
    settings = CollectionSettings(directory=directory, rolling_rate="Minute", max_age_seconds=None, max_bytes=None)
    writer = CollectionWriter(settings, hostname="shared")
    if mode == "write":
        for i in range(int(sys.argv[3])):
            pad = "x" * (100_000 if i % 50 == 0 else i % 700)
            while not writer.offer(ObjectRow("model_inputs", time.time(), f"{os.getpid()}-{i}", {"i": i, "p": pad})):
                time.sleep(0.01)  # the queue is full: wait for the writer, every row must land
        writer.close(timeout=30)
        stats(writer)
    elif mode == "forever":
        i = 0
        while True:
            for _ in range(20):
                writer.offer(ObjectRow("model_inputs", time.time(), str(i), {"i": i, "p": "y" * (i % 3000)}))
                i += 1
            if i == 20:
                writer.flush()
                print("ready", flush=True)
            time.sleep(0.002)
    elif mode == "fsize":
        limit = int(sys.argv[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        phases = (("small", T, 5), ("large", T, 40), ("next file", T + 3600, 2))
        for phase, moment, rows in phases:
            for i in range(rows):
                writer.offer(ObjectRow("model_inputs", moment, phase, {"i": i, "p": "z" * 200}))
            writer.flush()
        stats(writer)
        writer.close()


if __name__ == "__main__":
    main()
