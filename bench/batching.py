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
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from run import (
    BENCH,
    SCRIPT,
    WARMUP_S,
    Load,
    Server,
    SetupError,
    check,
    check_answer,
    find_scorehost,
    fmt,
    make_body,
    markdown,
    print_targets,
    run_main,
    say,
    started,
    wrk,
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
    loads: dict[tuple[str, int], list[Load]] = {}
    with tempfile.TemporaryDirectory(prefix="scorehost-batch-bench-") as tmp, ExitStack() as stack:
        body = make_body(Path(tmp), 1)
        ports = {}
        for server in servers:
            live = stack.enter_context(started(server, Path(tmp) / f"{server.kind}-{len(ports)}.log", 120))
            check_answer(live.port, body)
            wrk(live.port, body, 64, WARMUP_S)
            ports[server.name] = live.port
        for round_ in range(1, args.repeat + 1):
            for name, port in ports.items():
                for conns in CONNECTIONS:
                    load = wrk(port, body, conns, args.duration)
                    loads.setdefault((name, conns), []).append(load)
                    flag = f"  ERRORS: {load.errors}" if load.errors else ""
                    say(
                        f"[round {round_}/{args.repeat}] {name:<22} c={conns:<2} {load.rps:6.0f} req/s  "
                        f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms{flag}"
                    )
    return report(loads, args)


def report(loads: dict[tuple[str, int], list[Load]], args: argparse.Namespace) -> int:
    def median(name: str, conns: int, attr: str) -> float:
        return statistics.median(getattr(load, attr) for load in loads[(name, conns)])

    table = []
    for (name, conns), runs in loads.items():
        rps = median(name, conns, "rps")
        spread = f" ({min(x.rps for x in runs):.0f}–{max(x.rps for x in runs):.0f})" * (len(runs) > 1)
        table.append(
            [
                name,
                str(conns),
                f"{rps:.0f}{spread}",
                f"{median(name, conns, 'p50_ms'):.2f}",
                f"{median(name, conns, 'p99_ms'):.2f}",
                fmt(rps / median(UNBATCHED, conns, "rps")),
                fmt(rps / median(BARE, conns, "rps")),
                "ERRORS" if sum(x.errors for x in runs) else "",
            ]
        )
    print(
        f"\n## Batching (--workers {args.workers}, --max-batch-size {args.batch_size}, 1-row bodies; medians of "
        f"{args.repeat} round(s))\n"
    )
    print(markdown("server|conns|req/s|p50 ms|p99 ms|req/s / unbatched|req/s / bare|flag", table))
    gain = median(WITH_BATCHING, 64, "rps") / median(UNBATCHED, 64, "rps")
    p50 = median(WITH_BATCHING, 1, "p50_ms") / median(UNBATCHED, 1, "p50_ms")
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
