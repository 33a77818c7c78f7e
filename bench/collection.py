#!/usr/bin/env python3
"""Benchmark data collection, in one run: the same collecting script served by scorehost with collection off and
with all four collections on (request, response, model_inputs, model_outputs), beside the fastest bare server.

scripts/sklearn_lr_collecting is scripts/sklearn_lr plus Azure ML's data collector (`Collector(name=...)` for
inputs and outputs, joined by the request's context). Each server runs 2 workers; wrk drives each in turn (-t1,
1-row bodies, 1 and 16 connections, after a warm-up), round after round, and the script prints req/s, p50/p99,
the ratios, the rows written, and the issue's target: req/s with collection on >= 0.9 x off at 16 connections.
Exit status: 0 all good, 1 a target or a server failed, 2 a tool is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from run import (
    BENCH,
    SCRIPT,
    Loads,
    Server,
    SetupError,
    check,
    drive,
    find_scorehost,
    load_table,
    make_body,
    markdown,
    median_of,
    print_targets,
    run_main,
    start_warm,
)

COLLECTING = BENCH / "scripts" / "sklearn_lr_collecting" / "score.py"
CONNECTIONS = (1, 16)
MIN_RATIO_C16 = 0.9
OFF, ON, BARE = "scorehost, collection off", "scorehost, 4 collections on", "granian wsgi (bare)"


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SetupError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    scorehost = find_scorehost()
    if scorehost is None:
        raise SetupError(f"no scorehost beside {sys.executable}: `pip install -e '.[bench]'` first")
    q = shlex.quote
    bind = f"--host 127.0.0.1 --port {{port}} --workers {args.workers}"
    python, env = q(sys.executable), (("PYTHONPATH", str(BENCH)), ("BENCH_ENTRY_SCRIPT", str(SCRIPT)))
    with tempfile.TemporaryDirectory(prefix="scorehost-collection-bench-") as tmp, ExitStack() as stack:
        collected = Path(tmp) / "collected"
        serve = f"{q(str(scorehost))} serve {q(str(COLLECTING))} {bind}"
        servers = [
            Server(OFF, "scorehost", args.workers, serve, "/ready"),
            Server(ON, "scorehost", args.workers, f"{serve} --collect-dir {q(str(collected))}", "/ready"),
            Server(
                BARE,
                "bare",
                args.workers,
                f"{python} -m granian {bind} --interface wsgi --blocking-threads 1 servers.wsgi_app:app",
                env=env,
            ),
        ]
        body = make_body(Path(tmp), 1)
        ports = start_warm(servers, Path(tmp), stack, body, 16)
        loads = drive(ports, body, CONNECTIONS, args.repeat, args.duration)
        written = {
            folder.name: sum(path.read_bytes().count(b"\n") for path in folder.rglob("*.jsonl"))
            for folder in sorted(collected.iterdir())
        }
    return report(loads, written, args)


def report(loads: Loads, written: dict[str, int], args: argparse.Namespace) -> int:
    print(f"\n## Data collection (--workers {args.workers}, 1-row bodies; medians of {args.repeat} round(s))\n")
    table = load_table(loads, (OFF, BARE))
    print(markdown("server|conns|req/s|p50 ms|p99 ms|req/s / off|req/s / bare|flag", table))
    print("\nRows written with collection on: " + ", ".join(f"{name} {count}" for name, count in written.items()))
    ratio = median_of(loads, ON, 16, "rps") / median_of(loads, OFF, 16, "rps")
    targets = [check("collection on / off req/s at 16 connections", ratio, MIN_RATIO_C16)]
    print_targets(targets)
    errors = any(x.errors for runs in loads.values() for x in runs)
    return 1 if errors or any(t.passed is False for t in targets) else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark scorehost's data collection.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    add("--quick", action="store_true", help="one round of 3 s runs")
    add("--workers", type=int, default=2, help="workers of every server (default 2)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeat = 3, 1
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
