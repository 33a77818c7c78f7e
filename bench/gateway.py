#!/usr/bin/env python3
"""Benchmark the gateway: the same model served directly and through `scorehost gateway`, in one run.

Two identical `scorehost serve` processes of bench/scripts/sklearn_lr (2 workers): one on a TCP port, for
the direct figures, one on a Unix socket, as the local backend runs deployments; and one gateway (an
endpoint with key auth, the routing table written by this script) in front of the socket one, and of the
TCP one as a second endpoint (what loopback TCP upstream would cost). wrk drives each route in turn (-t1,
1 and 16 connections, 1-row bodies, after a warm-up), round after round, in a new (seeded) order each
round; the gateway's CPU per request is read from /proc around each run. `--clients` also measures
minimal proxies that differ only in their upstream client (httpx, aiohttp, scorehost's httptools pool:
servers/proxy_app.py). `--baseline SRC` also measures the gateway of another source tree (a worktree's
src/) in the same rounds: a before/after comparison on equal terms. Prints a markdown table and the
issue's targets as PASS/FAIL. See bench/README.md. Exit status: 0 all good, 1 a target or a server
failed, 2 a tool is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from run import (
    BENCH,
    SCRIPT,
    WARMUP_S,
    Body,
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

KEY = "bench-key-0123456789abcdefghijklmnopqrstuvwxyz"
PATH = "/endpoints/bench/score"
MAX_ADDED_P50_MS, MIN_RPS_RATIO = 1.0, 0.8
CLIENTS = ("httpx", "aiohttp", "pool")


@dataclass
class Row:
    route: str
    conns: int
    loads: list[Load] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the gateway's CPU per request, in each run

    def median(self, attr: str) -> float:
        return statistics.median(getattr(load, attr) for load in self.loads)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of `pid` and its children (a gateway's workers) so far."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def write_table(home: Path, socket: Path, backend_port: int) -> None:
    from scorehost.deploy.gateway import routes_path, write_routes

    def endpoint(target: str) -> dict[str, object]:
        return {"auth": "key", "keys": [KEY], "deployments": {"blue": {"weight": 100, "targets": [target]}}}

    table = {"bench": endpoint(f"unix:{socket}"), "bench-tcp": endpoint(f"http://127.0.0.1:{backend_port}")}
    write_routes(routes_path(home), {"version": 1, "endpoints": table})


def key_body(work: Path) -> Body:
    """make_body's 1-row body, with the endpoint's key in wrk's headers."""
    body = make_body(work, 1)
    lua = work / "post_1_key.lua"
    lua.write_text(body.lua.read_text() + f'wrk.headers["Authorization"] = "Bearer {KEY}"\n')
    return Body(1, body.data, lua)


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SetupError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    scorehost = find_scorehost()
    if scorehost is None:
        raise SetupError(f"no scorehost beside {sys.executable}: `pip install -e .` first")
    q = shlex.quote
    rows: dict[tuple[str, int], Row] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scorehost-gw-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        body = key_body(work)
        serve = f"{q(str(scorehost))} serve {q(str(SCRIPT))} --workers {args.workers}"
        backend = stack.enter_context(
            started(
                Server("scorehost", "scorehost", args.workers, f"{serve} --port {{port}}", "/ready"),
                work / "backend.log",
                120,
            )
        )
        socket = work / "deployment.sock"
        stack.enter_context(
            started(
                Server("scorehost uds", "scorehost", args.workers, f"{serve} --uds {socket}", f"unix:{socket}"),
                work / "backend-uds.log",
                120,
            )
        )
        write_table(work / "home", socket, backend.port)
        gateway_cmd = (
            f"{q(str(scorehost))} gateway --home {q(str(work / 'home'))} --port {{port}} "
            f"--workers {args.gateway_workers}"
        )
        gateway = stack.enter_context(
            started(Server("gateway", "scorehost", args.gateway_workers, gateway_cmd), work / "gateway.log", 60)
        )
        routes = {
            "direct": (backend.port, "/score"),
            "gateway": (gateway.port, PATH),
            "gateway, TCP upstream": (gateway.port, PATH.replace("/bench/", "/bench-tcp/")),
        }
        pids = {"gateway": gateway.pid, "gateway, TCP upstream": gateway.pid}  # CPU per request measured
        if args.baseline:
            env = (("PYTHONPATH", str(args.baseline.resolve())),)
            server = Server("gateway baseline", "scorehost", args.gateway_workers, gateway_cmd, env=env)
            baseline = stack.enter_context(started(server, work / "gateway-baseline.log", 60))
            routes["baseline gateway"] = (baseline.port, PATH)
            pids["baseline gateway"] = baseline.pid
        if args.clients:
            for client in CLIENTS:
                env = (
                    ("PYTHONPATH", str(BENCH)),
                    ("PROXY_CLIENT", client),
                    ("PROXY_UPSTREAM", f"http://127.0.0.1:{backend.port}"),
                )
                cmd = (
                    f"{q(sys.executable)} -m granian --host 127.0.0.1 --port {{port}} --interface rsgi --no-ws "
                    "servers.proxy_app:app"
                )
                live = stack.enter_context(
                    started(Server(f"proxy {client}", "bare", 1, cmd, "/", env=env), work / f"proxy-{client}.log", 60)
                )
                routes[f"proxy {client}"] = (live.port, "/score")
        for port, path in routes.values():
            check_answer(port, body, path, {"Authorization": f"Bearer {KEY}"})
            wrk(port, body, 16, WARMUP_S, path)
        for name in routes:  # the table's rows in this order, whatever order the rounds take
            for conns in (1, 16):
                rows[(name, conns)] = Row(name, conns)
        for round_ in range(1, args.repeat + 1):
            order = list(routes.items())
            random.Random(round_).shuffle(order)  # a new order each round: drift must not favour one route
            for name, (port, path) in order:
                for conns in (1, 16):
                    pid = pids.get(name)
                    cpu = cpu_seconds(pid) if pid else 0.0
                    load = wrk(port, body, conns, args.duration, path)
                    row = rows[(name, conns)]
                    row.loads.append(load)
                    used = ""
                    if pid and load.requests:
                        row.cpu_us.append((cpu_seconds(pid) - cpu) / load.requests * 1e6)
                        used = f"  gateway CPU {row.cpu_us[-1]:.0f} us/req"
                    flag = f"  ERRORS: {load.errors}" if load.errors else ""
                    say(
                        f"[round {round_}/{args.repeat}] {name:<21} c={conns:<2} {load.rps:6.0f} req/s  "
                        f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms{used}{flag}"
                    )
    return report(rows, failures, args)


def report(rows: dict[tuple[str, int], Row], failures: list[str], args: argparse.Namespace) -> int:
    table = []
    for (name, conns), row in rows.items():
        direct = rows[("direct", conns)]
        rps, p50, p99 = row.median("rps"), row.median("p50_ms"), row.median("p99_ms")
        ratio, added = rps / direct.median("rps"), p50 - direct.median("p50_ms")
        spread = f" ({min(x.rps for x in row.loads):.0f}–{max(x.rps for x in row.loads):.0f})" * (len(row.loads) > 1)
        errors = sum(x.errors for x in row.loads)
        cpu = f"{statistics.median(row.cpu_us):.0f}" if row.cpu_us else ""
        if len(row.cpu_us) > 1:
            cpu += f" ({min(row.cpu_us):.0f}–{max(row.cpu_us):.0f})"
        table.append(
            [
                name,
                str(conns),
                f"{rps:.0f}{spread}",
                f"{p50:.2f}",
                f"{p99:.2f}",
                fmt(ratio),
                f"{added:+.2f}",
                cpu,
                "ERRORS" if errors else "",
            ]
        )
    print(
        f"\n## Gateway vs direct (scorehost serve --workers {args.workers}, gateway --workers "
        f"{args.gateway_workers}, 1-row bodies; medians of {args.repeat} round(s); gateway: to a Unix socket "
        "as deployments run, TCP upstream: to a loopback port, for comparison)\n"
    )
    print(markdown("route|conns|req/s|p50 ms|p99 ms|req/s / direct|p50 added ms|gateway CPU us/req|flag", table))
    added = rows[("gateway", 1)].median("p50_ms") - rows[("direct", 1)].median("p50_ms")
    ratio = rows[("gateway", 16)].median("rps") / rows[("direct", 16)].median("rps")
    targets = [
        check("gateway p50 added at 1 connection (ms)", added, MAX_ADDED_P50_MS, at_most=True),
        check("gateway req/s / direct at 16 connections", ratio, MIN_RPS_RATIO),
    ]
    print_targets(targets)
    errors = any(x.errors for row in rows.values() for x in row.loads)
    if args.json:
        dump = {
            "rows": [asdict(row) for row in rows.values()],
            "targets": [asdict(t) for t in targets],
            "failures": failures,
            "args": vars(args),
        }
        args.json.write_text(json.dumps(dump, indent=2, default=str) + "\n")
    return 1 if failures or errors or any(t.passed is False for t in targets) else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the gateway against the server it fronts.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    add("--quick", action="store_true", help="one round of 3 s runs")
    add("--workers", type=int, default=2, help="scorehost serve workers (default 2)")
    add("--gateway-workers", type=int, default=1, help="gateway workers (default 1)")
    add("--clients", action="store_true", help="also measure minimal proxies per upstream client")
    add(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also measure the gateway of this source tree (e.g. a worktree's src/), same rounds",
    )
    add("--json", type=Path, metavar="PATH", help="also write every result to PATH as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeat = 3, 1
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
