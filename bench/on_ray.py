#!/usr/bin/env python3
"""Benchmark the entry-script host on Ray Serve, in one run, against the reference server and against a bare
Serve deployment doing the same model call.

A one-machine Ray cluster (scorehost.ray.localcluster: HAProxy ingress, throughput-optimized, 2 CPUs) runs
two applications of 2 replicas each: scorehost's (bench/scripts/sklearn_lr, unchanged) and a bare Serve
deployment (servers/ray_bare.py: orjson, predict, orjson). azmlinfsrv (2 workers) and `scorehost serve`
(2 workers) run beside them for reference. wrk drives each in turn (-t1, 1 and 16 connections, 1-row
body, after a warm-up), round after round; the script prints req/s, p50/p99, the ratios, Ray's cold start
(head, then deploy to first answer) and the cluster's memory (PSS of all its processes).

As root it re-runs itself in a private network namespace (`unshare --net`): in this mode Ray binds some
ports on every interface. Exit status: 0 all good, 1 a target or a server failed, 2 a tool is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from run import (
    BENCH,
    CACHE,
    REFERENCE_PACKAGE,
    SCRIPT,
    WARMUP_S,
    Load,
    SetupError,
    check,
    check_answer,
    ensure_reference,
    find_scorehost,
    fmt,
    free_port,
    make_body,
    markdown,
    print_targets,
    pss_mib,
    run_main,
    say,
    servers_for,
    started,
    wrk,
)

MIN_VS_REFERENCE, MIN_VS_BARE_SERVE = 1.2, 0.9
_NETNS = "SCOREHOST_BENCH_NETNS"


def private_network(argv: list[str]) -> None:
    """Run again inside a network namespace of our own, with only a loopback interface (root only)."""
    if os.geteuid() != 0 or os.environ.get(_NETNS) or shutil.which("unshare") is None:
        if not os.environ.get(_NETNS):
            say("note: not in a private network namespace; Ray binds some ports on every interface meanwhile")
        return
    command = " ".join(["ip link set lo up && exec", sys.executable, *map(str, argv)])
    os.execvpe("unshare", ["unshare", "--net", "--", "bash", "-c", command], {**os.environ, _NETNS: "1"})


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SetupError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    try:
        from scorehost.ray.localcluster import local_cluster
        from scorehost.ray.serve_app import application
    except ImportError as error:
        raise SetupError(f"scorehost is not installed here: pip install -e '.[ray]' ({error})") from None
    scorehost = find_scorehost()
    if scorehost is None:
        raise SetupError(f"no scorehost beside {sys.executable}: `pip install -e '.[ray]'` first")
    reference = None if args.skip_reference else ensure_reference(CACHE / "azmlinfsrv-venv", REFERENCE_PACKAGE)
    loads: dict[tuple[str, int], list[Load]] = {}
    with tempfile.TemporaryDirectory(prefix="scorehost-ray-bench-") as tmp, ExitStack() as stack:
        body = make_body(Path(tmp), 1)
        begin = time.perf_counter()
        cluster = stack.enter_context(local_cluster(args.ray_port, num_cpus=2))
        head_s = time.perf_counter() - begin
        import ray
        from ray import serve

        ray.init(address=cluster.address, log_to_driver=False)
        stack.callback(ray.shutdown)
        serve_port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
        replicas = {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}}
        begin = time.perf_counter()
        serve.run(application({"entry_script": str(SCRIPT)}, replicas), name="scorehost", route_prefix="/scorehost")
        check_answer(serve_port, body, "/scorehost/score")
        deploy_s = time.perf_counter() - begin
        cluster_mib = pss_mib(cluster.pgid)  # `ray start --block` is the root of the cluster's tree
        sys.path.insert(0, str(BENCH))
        from servers.ray_bare import Bare

        serve.run(Bare.options(**replicas).bind(str(BENCH)), name="bare", route_prefix="/bare")  # type: ignore[attr-defined]
        routes = {"scorehost on Ray": (serve_port, "/scorehost/score"), "bare Serve": (serve_port, "/bare/score")}
        others = servers_for(2, scorehost, reference)
        for server in (s for s in others if s.label in ("scorehost w2", "azmlinfsrv w2")):
            live = stack.enter_context(started(server, Path(tmp) / f"{server.name}.log", 120))
            routes[server.name] = (live.port, "/score")
        for port, path in routes.values():
            check_answer(port, body, path)
            wrk(port, body, 16, WARMUP_S, path)
        for round_ in range(1, args.repeat + 1):
            for name, (port, path) in routes.items():
                for conns in (1, 16):
                    load = wrk(port, body, conns, args.duration, path)
                    loads.setdefault((name, conns), []).append(load)
                    flag = f"  ERRORS: {load.errors}" if load.errors else ""
                    say(
                        f"[round {round_}/{args.repeat}] {name:<17} c={conns:<2} {load.rps:6.0f} req/s  "
                        f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms{flag}"
                    )
    return report(loads, head_s, deploy_s, cluster_mib, args)


def report(
    loads: dict[tuple[str, int], list[Load]],
    head_s: float,
    deploy_s: float,
    cluster_mib: float,
    args: argparse.Namespace,
) -> int:
    def median(name: str, conns: int, attr: str) -> float:
        return statistics.median(getattr(load, attr) for load in loads[(name, conns)])

    table = []
    for (name, conns), runs in loads.items():
        rps = median(name, conns, "rps")
        versus = {
            other: rps / median(other, conns, "rps")
            for other in ("azmlinfsrv", "bare Serve")
            if (other, conns) in loads
        }
        spread = f" ({min(x.rps for x in runs):.0f}–{max(x.rps for x in runs):.0f})" * (len(runs) > 1)
        errors = sum(x.errors for x in runs)
        table.append(
            [
                name,
                str(conns),
                f"{rps:.0f}{spread}",
                f"{median(name, conns, 'p50_ms'):.2f}",
                f"{median(name, conns, 'p99_ms'):.2f}",
                fmt(versus.get("azmlinfsrv")),
                fmt(versus.get("bare Serve")),
                "ERRORS" if errors else "",
            ]
        )
    print(
        f"\n## Ray Serve (2 replicas, HAProxy mode, 2 CPUs) vs the reference (2 workers); 1-row body; medians of "
        f"{args.repeat} round(s)\n"
    )
    print(markdown("server|conns|req/s|p50 ms|p99 ms|req/s / azml|req/s / bare Serve|flag", table))
    print("\n## Cold start and memory\n")
    print(
        markdown(
            "what|figure",
            [
                ["Ray head started (ray start, to its port listening)", f"{head_s:.1f} s"],
                ["scorehost app deployed, 2 replicas, to the first answer", f"{deploy_s:.1f} s"],
                ["PSS of the whole cluster with the scorehost app", f"{cluster_mib:.0f} MiB"],
            ],
        )
    )
    targets = []
    for conns in (1, 16):
        ours = ("scorehost on Ray", conns)
        if ("azmlinfsrv", conns) in loads:
            ratio = median(*ours, "rps") / median("azmlinfsrv", conns, "rps")
            targets.append(check(f"scorehost on Ray / azmlinfsrv req/s, c{conns}", ratio, MIN_VS_REFERENCE))
        ratio = median(*ours, "rps") / median("bare Serve", conns, "rps")
        targets.append(check(f"scorehost on Ray / bare Serve req/s, c{conns}", ratio, MIN_VS_BARE_SERVE))
    print_targets(targets)
    errors = any(x.errors for runs in loads.values() for x in runs)
    return 1 if errors or any(t.passed is False for t in targets) else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark scorehost on Ray Serve.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    add("--ray-port", type=int, default=26380, help="the Ray head's port (default 26380)")
    add("--skip-reference", action="store_true", help="do not install or run azmlinfsrv")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        if not args.skip_reference:
            ensure_reference(CACHE / "azmlinfsrv-venv", REFERENCE_PACKAGE)  # needs PyPI: before the namespace
        private_network([__file__, *(sys.argv[1:] if argv is None else argv)])
        return bench(args)

    return run_main(run, "everything started has been stopped")


if __name__ == "__main__":
    sys.exit(main())
