#!/usr/bin/env python3
"""Benchmark adaptive batching, in one run: the same model served by scorehost with and without run_batch(),
and by the fastest bare server (granian WSGI, orjson and predict, no entry script).

scripts/sklearn_lr_batched is scripts/sklearn_lr plus a run_batch() that predicts several requests' rows in
one call. Each server runs 2 workers; wrk drives each in turn (-t1, 1-row bodies, 1, 16 and 64 connections,
after a warm-up), round after round, and the script prints req/s, p50/p99, the ratios and the issue's
targets: batched req/s at 64 connections >= 2x unbatched, and batched p50 at 1 connection within 5 % of
unbatched (a lone request must not wait for company). Exit status: 0 all good, 1 a target or a server failed,
2 a tool is missing, 130 interrupted.
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

BATCHED = BENCH / "scripts" / "sklearn_lr_batched" / "score.py"
CONNECTIONS = (1, 16, 64)
MIN_GAIN_C64, MAX_P50_C1 = 2.0, 1.05
UNBATCHED, WITH_BATCHING, BARE = "scorehost", "scorehost, run_batch()", "granian wsgi (bare)"


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SetupError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    scorehost = find_scorehost()
    if scorehost is None:
        raise SetupError(f"no scorehost beside {sys.executable}: `pip install -e '.[bench]'` first")
    q = shlex.quote
    bind = f"--host 127.0.0.1 --port {{port}} --workers {args.workers}"
    python, env = q(sys.executable), (("PYTHONPATH", str(BENCH)), ("BENCH_ENTRY_SCRIPT", str(SCRIPT)))
    servers = [
        Server(UNBATCHED, "scorehost", args.workers, f"{q(str(scorehost))} serve {q(str(SCRIPT))} {bind}", "/ready"),
        Server(
            WITH_BATCHING,
            "scorehost",
            args.workers,
            f"{q(str(scorehost))} serve {q(str(BATCHED))} {bind} --max-batch-size {args.batch_size}",
            "/ready",
        ),
        Server(
            BARE,
            "bare",
            args.workers,
            f"{python} -m granian {bind} --interface wsgi --blocking-threads 1 servers.wsgi_app:app",
            env=env,
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="scorehost-batch-bench-") as tmp, ExitStack() as stack:
        body = make_body(Path(tmp), 1)
        ports = start_warm(servers, Path(tmp), stack, body, 64)
        loads = drive(ports, body, CONNECTIONS, args.repeat, args.duration)
    return report(loads, args)


def report(loads: Loads, args: argparse.Namespace) -> int:
    print(
        f"\n## Batching (--workers {args.workers}, --max-batch-size {args.batch_size}, 1-row bodies; medians of "
        f"{args.repeat} round(s))\n"
    )
    table = load_table(loads, (UNBATCHED, BARE))
    print(markdown("server|conns|req/s|p50 ms|p99 ms|req/s / unbatched|req/s / bare|flag", table))
    gain = median_of(loads, WITH_BATCHING, 64, "rps") / median_of(loads, UNBATCHED, 64, "rps")
    p50 = median_of(loads, WITH_BATCHING, 1, "p50_ms") / median_of(loads, UNBATCHED, 1, "p50_ms")
    targets = [
        check("batched / unbatched req/s at 64 connections", gain, MIN_GAIN_C64),
        check("batched / unbatched p50 at 1 connection", p50, MAX_P50_C1, at_most=True),
    ]
    print_targets(targets)
    errors = any(x.errors for runs in loads.values() for x in runs)
    return 1 if errors or any(t.passed is False for t in targets) else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark scorehost's adaptive batching.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    add("--quick", action="store_true", help="one round of 3 s runs")
    add("--workers", type=int, default=2, help="workers of every server (default 2)")
    add("--batch-size", type=int, default=32, help="--max-batch-size of the batched server (default 32)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeat = 3, 1
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
