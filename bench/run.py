#!/usr/bin/env python3
"""Benchmark `scorehost serve` against bare servers and the reference server, in one run.

Every server hosts the same model (bench/scripts/sklearn_lr) and is started on a free port, one
after another, then driven with wrk (-t1; 1 and 16 connections; 1- and 100-row bodies; after a
2 s warm-up). Prints a markdown table with ratios against the fastest bare server and azmlinfsrv
of the same group, PSS memory, cold start, and the issue's targets as PASS/FAIL.
See bench/README.md. Exit status: 0 all good, 1 a target or a server failed, 2 a tool is
missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Literal, NoReturn

BENCH = Path(__file__).resolve().parent
SCRIPT = BENCH / "scripts" / "sklearn_lr" / "score.py"
SERVERS = BENCH / "servers"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scorehost-bench"
REFERENCE_PACKAGE = "azureml-inference-server-http==1.5.1"  # the version the contract documents
ROWS, CONNS, FEATURES, WARMUP_S, COLD_RUNS = (1, 100), (1, 16), 20, 2, 3
TARGET_GROUP = (2, 1, 16)  # (workers, rows, conns) the targets are checked at
MIN_VS_BARE, MIN_VS_REFERENCE, MAX_P99_VS_BARE, MAX_PRELOAD_PSS = 0.85, 3.0, 1.5, 1.3
Kind = Literal["scorehost", "bare", "reference"]
_live: set[int] = set()  # process groups of running servers, killed at exit whatever happens


class ServerError(RuntimeError):
    """A server did not start, did not become ready, or answered wrongly."""


@dataclass(frozen=True)
class Server:
    name: str
    kind: Kind
    workers: int
    argv: tuple[str, ...]  # "{port}" is replaced by the port
    ready_path: str = "/"
    cwd: Path = BENCH
    env: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} w{self.workers}"


@dataclass(frozen=True)
class Live:
    """A started server that answered its readiness probe."""

    port: int
    pid: int
    ready_s: float


@dataclass(frozen=True)
class Body:
    rows: int
    data: bytes
    lua: Path


@dataclass(frozen=True)
class Load:
    """One wrk run, parsed from its --latency output."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses plus socket errors (connect, read, write, timeout)


@dataclass
class Row:
    """One server in one (workers, rows, conns) group, medians over the rounds, ratios in the group."""

    server: str
    kind: Kind
    workers: int
    rows: int
    conns: int
    loads: list[Load] = field(default_factory=list)
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    vs_bare: float | None = None
    vs_reference: float | None = None
    p99_vs_bare: float | None = None

    @property
    def group(self) -> tuple[int, int, int]:
        return self.workers, self.rows, self.conns

    def cells(self) -> list[str]:
        ratios = (self.vs_bare, self.vs_reference, self.p99_vs_bare)
        flag = f"ERRORS: {self.errors}" if self.errors else ""
        return [
            self.server,
            *map(str, self.group),
            f"{self.rps:.0f}",
            f"{self.p50_ms:.2f}",
            f"{self.p99_ms:.2f}",
            *map(fmt, ratios),
            flag,
        ]


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: str
    passed: bool | None  # None: not measured (skipped or failed)


# ------------------------------------------------------------------------------ servers


def servers_for(workers: int, scorehost: Path | None, reference: Path | None) -> list[Server]:
    py, port, n = sys.executable, "{port}", str(workers)
    found: list[Server] = []
    if scorehost:
        serve = (str(scorehost), "serve", str(SCRIPT), "--host", "127.0.0.1", "--port", port)
        found.append(Server("scorehost", "scorehost", workers, (*serve, "--workers", n), "/ready"))
        if workers > 1:
            preload = (*serve, "--workers", n, "--preload")
            found.append(Server("scorehost --preload", "scorehost", workers, preload, "/ready"))
    granian = (py, "-m", "granian", "--host", "127.0.0.1", "--port", port, "--workers", n)
    uvicorn = (py, "-m", "uvicorn", "--host", "127.0.0.1", "--port", port, "--workers", n)
    bare = {
        "granian rsgi": (*granian, *"--interface rsgi --no-ws rsgi_app:app".split()),
        "granian wsgi": (*granian, *"--interface wsgi --blocking-threads 1 wsgi_app:app".split()),
        "uvicorn starlette": (
            *uvicorn,
            *"--loop uvloop --http httptools --no-access-log asgi_app:app".split(),
        ),
    }
    env = (("PYTHONPATH", str(SERVERS)), ("BENCH_ENTRY_SCRIPT", str(SCRIPT)))
    found += [Server(name, "bare", workers, argv, cwd=SERVERS, env=env) for name, argv in bare.items()]
    if reference:  # binds 0.0.0.0 (it has no host flag); ready = first answered GET /
        argv = (str(reference), "--entry_script", SCRIPT.name, "--port", port, "--worker_count", n)
        found.append(Server("azmlinfsrv", "reference", workers, argv, cwd=SCRIPT.parent))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # free on every interface, as azmlinfsrv binds 0.0.0.0
        port: int = sock.getsockname()[1]
        return port


def proc_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, process group), read from /proc."""
    table: dict[int, tuple[str, int, int]] = {}
    for entry in os.scandir("/proc"):
        try:
            stat = Path(entry.path, "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # the process has just gone
            continue
        if stat:
            state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
            table[int(entry.name)] = (state, int(ppid), int(pgrp))
    return table


def pss_mib(root: int) -> float:
    """Total PSS of the process tree under root (master and workers)."""
    table, tree, kib = proc_table(), [root], 0
    for pid in tree:  # breadth-first: the list grows while we walk it
        tree += [child for child, (_, ppid, _) in table.items() if ppid == pid]
    for pid in tree:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        kib += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return kib / 1024


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL whatever is left after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader; orphaned workers are reaped by init
            if all(pgrp != proc.pid or state == "Z" for state, _, pgrp in proc_table().values()):
                _live.discard(proc.pid)
                return
            time.sleep(0.05)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live):
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def request(url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answered."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, http.client.HTTPException):
        return None


def log_tail(log: Path, lines: int = 25) -> str:
    return "\n".join("    " + line for line in log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def started(server: Server, log: Path, timeout: float) -> Iterator[Live]:
    """Start the server in its own process group, wait until ready; stop it on the way out."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in server.argv]
    env = {**os.environ, "AZUREML_MODEL_DIR": str(SCRIPT.parent), **dict(server.env)}
    begin = time.perf_counter()
    try:
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the server
            proc = subprocess.Popen(
                argv,
                cwd=server.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as error:
        raise ServerError(f"{server.label} could not start: {error}") from error
    _live.add(proc.pid)
    try:
        url = f"http://127.0.0.1:{port}{server.ready_path}"
        while (reply := request(url, timeout=1.0)) is None or reply[0] != 200:
            if proc.poll() is not None:
                raise ServerError(f"exited with {proc.returncode}:\n{log_tail(log)}")
            if time.perf_counter() - begin > timeout:
                raise ServerError(f"not ready after {timeout:.0f} s:\n{log_tail(log)}")
            time.sleep(0.02)
        yield Live(port, proc.pid, time.perf_counter() - begin)
    finally:
        stop_group(proc)


# ------------------------------------------------------------------------------ load


def make_body(work: Path, rows: int) -> Body:
    rng = random.Random(rows)
    body = json.dumps(
        {"data": [[round(rng.uniform(-3, 3), 4) for _ in range(FEATURES)] for _ in range(rows)]}
    )
    lua = work / f"post_{rows}.lua"
    lua.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n'
    )
    return Body(rows, body.encode(), lua)


UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk(port: int, body: Body, conns: int, duration: int) -> Load:
    url = f"http://127.0.0.1:{port}/score"
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(body.lua), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    out = done.stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if done.returncode != 0 or rps is None:
        raise ServerError(f"wrk failed ({done.returncode}): {done.stderr.strip() or out}")
    latency = {
        p: float(v) * UNIT_MS[unit]
        for p, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)$", out, re.M)
    }
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    nan = float("nan")
    return Load(
        float(rps[1]), latency.get("50", nan), latency.get("99", nan), int(total[1]) if total else 0, errors
    )


def check_answer(port: int, body: Body) -> None:
    """One prediction per row, or the numbers mean nothing."""
    reply = request(f"http://127.0.0.1:{port}/score", body.data)
    try:
        ok = reply is not None and reply[0] == 200 and len(json.loads(reply[1])) == body.rows
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ServerError(f"wrong answer to a {body.rows}-row body: {reply!r:.300}")


def measure(
    server: Server, cases: list[tuple[int, int]], bodies: dict[int, Body], args: argparse.Namespace, log: Path
) -> tuple[list[Row], float, float]:
    """One Row per (rows, conns) case; then PSS of the tree (after the load) and seconds to ready."""
    found: list[Row] = []
    with started(server, log, args.ready_timeout) as live:
        for body in bodies.values():
            check_answer(live.port, body)
        for rows in sorted({r for r, _ in cases} or {1}):  # memory-only servers get the warm-up load
            wrk(live.port, bodies[rows], 16, WARMUP_S)
            for conns in sorted(c for r, c in cases if r == rows):
                load = wrk(live.port, bodies[rows], conns, args.duration)
                found.append(Row(server.name, server.kind, server.workers, rows, conns, [load]))
                say(
                    f"    rows={rows:<3} c={conns:<2} {load.rps:8.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
                    f"p99 {load.p99_ms:6.2f} ms" + (f"  ERRORS: {load.errors}" if load.errors else "")
                )
        return found, pss_mib(live.pid), live.ready_s


# ------------------------------------------------------------------------------ reference


def ensure_reference(venv: Path, package: str) -> Path:
    """azmlinfsrv in a scratch venv outside the repo, with this venv's numpy/scikit-learn."""
    wanted = [package]
    for name in ("numpy", "scikit-learn"):  # same versions on both sides, for a fair race
        try:
            wanted.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            wanted.append(name)
    exe, marker = venv / "bin" / "azmlinfsrv", venv / "scorehost-bench-requirements.txt"
    if exe.exists() and marker.exists() and marker.read_text().split() == wanted:
        return exe
    say(f"installing {' '.join(wanted)} into {venv} ...")
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", *wanted], check=True)
    marker.write_text("\n".join(wanted))
    return exe


# ------------------------------------------------------------------------------ report


def summarize(results: list[Row]) -> list[Row]:
    """Merge the rounds of each server and group into medians; add the ratios within each group."""
    merged: dict[tuple[int, int, int, str], Row] = {}
    for row in results:
        merged.setdefault((*row.group, row.server), Row(row.server, row.kind, *row.group)).loads += row.loads
    for row in merged.values():
        row.rps = statistics.median(load.rps for load in row.loads)
        row.p50_ms = statistics.median(load.p50_ms for load in row.loads)
        row.p99_ms = statistics.median(load.p99_ms for load in row.loads)
        row.errors = sum(load.errors for load in row.loads)
    order: dict[Kind, int] = {"scorehost": 0, "bare": 1, "reference": 2}
    rows = sorted(merged.values(), key=lambda r: (r.group, order[r.kind], r.server))
    for row in rows:
        group = [other for other in rows if other.group == row.group]
        bare = max((o for o in group if o.kind == "bare"), key=lambda o: o.rps, default=None)
        reference = next((o for o in group if o.kind == "reference"), None)
        if bare:
            row.vs_bare, row.p99_vs_bare = row.rps / bare.rps, row.p99_ms / bare.p99_ms
        if reference:
            row.vs_reference = row.rps / reference.rps
    return rows


def targets(rows: list[Row], memory: dict[str, float]) -> list[Target]:
    """The issue's targets: throughput and p99 at TARGET_GROUP, and memory with --preload."""

    def check(name: str, value: float | None, bound: float, at_most: bool = False) -> Target:
        passed = None if value is None else (value <= bound if at_most else value >= bound)
        return Target(name, value, f"{'<=' if at_most else '>='} {bound}", passed)

    found: list[Target] = []
    where = "w{}, {} row, c{}".format(*TARGET_GROUP)
    for name in ("scorehost", "scorehost --preload"):
        row = next((r for r in rows if r.group == TARGET_GROUP and r.server == name), None)
        found.append(check(f"{name} ({where}) req/s / fastest bare", row and row.vs_bare, MIN_VS_BARE))
        found.append(
            check(f"{name} ({where}) req/s / azmlinfsrv", row and row.vs_reference, MIN_VS_REFERENCE)
        )
        found.append(
            check(f"{name} ({where}) p99 / fastest bare", row and row.p99_vs_bare, MAX_P99_VS_BARE, True)
        )
    single, preload = memory.get("scorehost w1"), memory.get("scorehost --preload w2")
    ratio = preload / single if single and preload else None
    found.append(check("PSS scorehost --preload w2 / scorehost w1", ratio, MAX_PRELOAD_PSS, True))
    return found


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(cells[i]) for cells in body)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


def report(
    rows: list[Row], memory: dict[str, float], cold: dict[str, list[float]], failures: list[str]
) -> list[Target]:
    headers = "server|workers|rows|conns|req/s|p50 ms|p99 ms|req/s / bare|req/s / azml|p99 / bare|flag"
    print("\n## Throughput (medians; ratios within each workers/rows/conns group)\n")
    print(markdown(headers.split("|"), [row.cells() for row in rows]))
    print("\n## Memory: PSS of the whole process tree, after load\n")
    print(markdown(["server", "PSS MiB"], [[label, f"{mib:.0f}"] for label, mib in memory.items()]))
    print("\n## Cold start: process start to ready (scorehost GET /ready, the others GET /)\n")
    medians = {label: statistics.median(times) for label, times in cold.items() if times}
    base = medians.get("azmlinfsrv w2")
    print(
        markdown(
            ["server", "median s", "runs s", "/ azmlinfsrv"],
            [
                [label, f"{m:.2f}", " ".join(f"{t:.2f}" for t in cold[label]), fmt(base and m / base)]
                for label, m in medians.items()
            ],
        )
    )
    found = targets(rows, memory)
    verdict = {True: "PASS", False: "FAIL", None: "SKIP"}
    print("\n## Targets\n")
    print(
        markdown(
            ["target", "measured", "limit", "result"],
            [[t.name, fmt(t.value), t.limit, verdict[t.passed]] for t in found],
        )
    )
    if flagged := [f"{r.server} w{r.workers} rows={r.rows} c{r.conns}" for r in rows if r.errors]:
        print("\nFLAGGED (non-2xx responses or socket errors):", "; ".join(flagged))
    for failure in failures:
        print(f"\nFAILED {failure}")
    return found


# ------------------------------------------------------------------------------ main


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark scorehost vs bare servers and azmlinfsrv.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=1, help="rounds over all servers; medians are reported")
    add("--quick", action="store_true", help="only the w2/1-row/c16 group, memory, cold start")
    add("--skip-scorehost", action="store_true", help="bare servers and azmlinfsrv only")
    add("--skip-reference", action="store_true", help="do not install or run azmlinfsrv")
    add("--reference-venv", type=Path, default=CACHE / "azmlinfsrv-venv", help="reused if present")
    add("--reference-package", default=REFERENCE_PACKAGE, help="pip requirement for azmlinfsrv")
    add("--ready-timeout", type=float, default=120.0, help="seconds to wait for ready (default 120)")
    add("--json", type=Path, metavar="PATH", help="also write all results to PATH as JSON")
    return parser.parse_args(argv)


def find_scorehost() -> Path | None:
    beside = Path(sys.executable).parent / "scorehost"
    found = beside if beside.exists() else shutil.which("scorehost")
    return Path(found) if found else None


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        say("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
        return 2
    scorehost = None if args.skip_scorehost else find_scorehost()
    if scorehost is None and not args.skip_scorehost:
        say(f"no scorehost beside {sys.executable}: pip install -e . first, or --skip-scorehost")
        return 2
    reference = None
    if not args.skip_reference:
        reference = ensure_reference(args.reference_venv.expanduser(), args.reference_package)
    groups = [TARGET_GROUP] if args.quick else [(w, r, c) for w in (1, 2) for r in ROWS for c in CONNS]
    plan = [
        (server, [(r, c) for w, r, c in groups if w == server.workers])
        for workers in (1, 2)
        for server in servers_for(workers, scorehost, reference)
    ]
    plan = [(s, cases) for s, cases in plan if cases or s.label == "scorehost w1"]  # w1: memory baseline
    cold_servers = [
        s for s in servers_for(2, scorehost, reference) if s.kind != "bare" or s.name == "granian rsgi"
    ]
    results: list[Row] = []
    pss: dict[str, list[float]] = {}
    cold: dict[str, list[float]] = {s.label: [] for s in cold_servers}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scorehost-bench-") as tmp:
        work = Path(tmp)
        bodies = {rows: make_body(work, rows) for rows in ROWS}
        for round_ in range(1, args.repeat + 1):
            for i, (server, cases) in enumerate(plan, 1):
                say(f"[round {round_}/{args.repeat}, server {i}/{len(plan)}] {server.label}")
                try:
                    rows, mib, ready_s = measure(server, cases, bodies, args, work / "server.log")
                except ServerError as error:
                    failures.append(f"{server.label}: {error}")
                    say(f"    FAILED: {error}")
                    continue
                results += rows
                pss.setdefault(server.label, []).append(mib)
                say(f"    ready in {ready_s:.2f} s; PSS after load {mib:.0f} MiB")
        for i in range(1, COLD_RUNS + 1):  # interleaved, so drift hits every server alike
            for server in cold_servers:
                try:
                    with started(server, work / "server.log", args.ready_timeout) as live:
                        cold[server.label].append(live.ready_s)
                    say(f"cold start {i}/{COLD_RUNS} {server.label}: {live.ready_s:.2f} s")
                except ServerError as error:
                    failures.append(f"cold start {server.label}: {error}")
    rows = summarize(results)
    memory = {label: statistics.median(values) for label, values in pss.items()}
    found = report(rows, memory, cold, failures)
    if args.json:
        dump = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "throughput": [asdict(r) for r in rows],
            "pss_mib": pss,
            "cold_start_s": cold,
            "targets": [asdict(t) for t in found],
            "failures": failures,
        }
        args.json.write_text(json.dumps(dump, indent=2) + "\n")
    return 1 if failures or any(t.passed is False for t in found) else 0


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # so that `finally` stops the servers
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        return bench(parse_args(argv))
    except KeyboardInterrupt:
        say("interrupted; every server started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
