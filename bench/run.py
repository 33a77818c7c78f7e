#!/usr/bin/env python3
"""Benchmark `scorehost serve` against bare servers and the reference server, in one run.

Every server hosts the same model (bench/scripts/sklearn_lr) and is started on a free port, one after
another, then driven with wrk (-t1; 1 and 16 connections; 1- and 100-row bodies; after a 2 s warm-up).
Prints a markdown table with ratios against the fastest bare server and azmlinfsrv of the same group,
memory (PSS), cold start, and the issue's targets as PASS/FAIL. See bench/README.md.
Exit status: 0 all good, 1 a target or a server failed, 2 a tool is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import random
import re
import shlex
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Literal, NoReturn

BENCH = Path(__file__).resolve().parent
SCRIPT = BENCH / "scripts" / "sklearn_lr" / "score.py"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scorehost-bench"
REFERENCE_PACKAGE = "azureml-inference-server-http==1.5.1"  # the version the contract documents
ROWS, CONNS, FEATURES, WARMUP_S, COLD_RUNS = (1, 100), (1, 16), 20, 2, 3
# A bare server that calls the script's run() (its stdlib json.loads included), where the others call
# the model directly: scorehost / this isolates what the server itself costs. Shown, never "fastest".
BARE_RUN = "granian wsgi run()"
TARGET_GROUP = (2, 1, 16)  # (workers, rows, conns) where the targets are checked
MIN_VS_BARE, MIN_VS_REFERENCE, MAX_P99_VS_BARE, MAX_PRELOAD_PSS = 0.85, 3.0, 1.5, 1.3
Kind = Literal["scorehost", "bare", "reference"]
_live: set[int] = set()  # process groups of running servers: killed at exit, whatever happens


class SetupError(RuntimeError):
    """A tool the benchmark needs is missing and could not be installed."""


class ServerError(RuntimeError):
    """A server did not start, did not become ready, or answered wrongly."""


@dataclass(frozen=True)
class Server:
    name: str
    kind: Kind
    workers: int
    command: str  # shell words; {port} is replaced by the port
    ready_path: str = "/"  # or unix:SOCKET (GET /ready there), for a server on a Unix socket
    cwd: Path = BENCH
    env: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} w{self.workers}"


@dataclass(frozen=True)
class Live:
    """A started server that has answered its readiness probe."""

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
    """One server in one (workers, rows, conns) group: medians over the rounds, ratios within the group."""

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
        spread = f" ({min(x.rps for x in self.loads):.0f}–{max(x.rps for x in self.loads):.0f})"
        measured = [
            f"{self.rps:.0f}" + spread * (len(self.loads) > 1),
            f"{self.p50_ms:.2f}",
            f"{self.p99_ms:.2f}",
        ]
        ratios = [fmt(r) for r in (self.vs_bare, self.vs_reference, self.p99_vs_bare)]
        return [self.server, *map(str, self.group), *measured, *ratios, "ERRORS" if self.errors else ""]


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: str
    passed: bool | None  # None: not measured (skipped, or the server failed)


# ---------------------------------------------------------------------------------------------- servers


def servers_for(workers: int, scorehost: Path | None, reference: Path | None) -> list[Server]:
    q, bind = shlex.quote, f"--host 127.0.0.1 --port {{port}} --workers {workers}"
    found: list[Server] = []
    if scorehost:
        serve = f"{q(str(scorehost))} serve {q(str(SCRIPT))} {bind}"
        found.append(Server("scorehost", "scorehost", workers, serve, "/ready"))
        if workers > 1:
            found.append(Server("scorehost --preload", "scorehost", workers, f"{serve} --preload", "/ready"))
    python, env = q(sys.executable), (("PYTHONPATH", str(BENCH)), ("BENCH_ENTRY_SCRIPT", str(SCRIPT)))
    bare = {
        "granian rsgi": f"{python} -m granian {bind} --interface rsgi --no-ws servers.rsgi_app:app",
        "granian wsgi": f"{python} -m granian {bind} --interface wsgi --blocking-threads 1 servers.wsgi_app:app",
        BARE_RUN: f"{python} -m granian {bind} --interface wsgi --blocking-threads 1 servers.wsgi_app:run_app",
        "uvicorn starlette": f"{python} -m uvicorn {bind} --loop uvloop --http httptools --no-access-log "
        "servers.asgi_app:app",
    }
    found += [Server(name, "bare", workers, cmd, env=env) for name, cmd in bare.items()]
    if reference:  # binds 0.0.0.0 (it has no host flag); ready = first GET / answered
        command = f"{q(str(reference))} --entry_script {SCRIPT.name} --port {{port}} --worker_count {workers}"
        found.append(Server("azmlinfsrv", "reference", workers, command, cwd=SCRIPT.parent))
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
        with suppress(OSError):
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            kib += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return kib / 1024


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL whatever is left of it after 10 s."""
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


def request(
    url: str, body: bytes | None = None, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answered."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, http.client.HTTPException):
        return None


def _ready(path: str, port: int) -> bool:
    if path.startswith("unix:"):
        from scorehost.deploy.backends.local_process import probe_ready

        return probe_ready(path)
    reply = request(f"http://127.0.0.1:{port}{path}", timeout=1.0)
    return reply is not None and reply[0] == 200


def log_tail(log: Path, lines: int = 25) -> str:
    return "\n".join("    " + line for line in log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def started(server: Server, log: Path, timeout: float) -> Iterator[Live]:
    """Start the server in its own process group and wait until ready; stop the group on the way out."""
    port = free_port()
    argv = shlex.split(server.command.replace("{port}", str(port)))
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
        raise ServerError(f"could not start: {error}") from error
    _live.add(proc.pid)
    try:
        while not _ready(server.ready_path, port):
            if proc.poll() is not None:
                raise ServerError(f"exited with {proc.returncode}:\n{log_tail(log)}")
            if time.perf_counter() - begin > timeout:
                raise ServerError(f"not ready after {timeout:.0f} s:\n{log_tail(log)}")
            time.sleep(0.02)
        yield Live(port, proc.pid, time.perf_counter() - begin)
    finally:
        stop_group(proc)


# ---------------------------------------------------------------------------------------------- load


def make_body(work: Path, rows: int) -> Body:
    rng = random.Random(rows)
    body = json.dumps({"data": [[round(rng.uniform(-3, 3), 4) for _ in range(FEATURES)] for _ in range(rows)]})
    lua = work / f"post_{rows}.lua"
    headers = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    lua.write_text(f"{headers}wrk.body = [==[{body}]==]\n")
    return Body(rows, body.encode(), lua)


UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk(port: int, body: Body, conns: int, duration: int, path: str = "/score") -> Load:
    url = f"http://127.0.0.1:{port}{path}"
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(body.lua), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    out = done.stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if done.returncode != 0 or rps is None:
        raise ServerError(f"wrk failed ({done.returncode}): {done.stderr.strip() or out}")
    latency = {p: float(v) * UNIT_MS[unit] for p, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(\w+)$", out, re.M)}
    total = re.search(r"(\d+) requests in", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(map(int, sockets.groups() if sockets else ())) + (int(non_2xx[1]) if non_2xx else 0)
    return Load(
        rps=float(rps[1]),
        p50_ms=latency.get("50", float("nan")),
        p99_ms=latency.get("99", float("nan")),
        requests=int(total[1]) if total else 0,
        errors=errors,
    )


def check_answer(port: int, body: Body, path: str = "/score", headers: dict[str, str] | None = None) -> None:
    """One prediction per row, or the numbers mean nothing."""
    reply = request(f"http://127.0.0.1:{port}{path}", body.data, headers=headers)
    try:
        ok = reply is not None and reply[0] == 200 and len(json.loads(reply[1])) == body.rows
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ServerError(f"wrong answer to a {body.rows}-row body: {reply!r:.300}")


def measure(
    server: Server, cases: list[tuple[int, int]], bodies: dict[int, Body], log: Path, args: argparse.Namespace
) -> tuple[list[Row], float, float]:
    """One Row per (rows, conns) case; then the tree's PSS (after the load) and seconds to ready."""
    found: list[Row] = []
    with started(server, log, args.ready_timeout) as live:
        try:
            for body in bodies.values():
                check_answer(live.port, body)
            for rows in sorted({r for r, _ in cases} or {1}):  # memory-only servers get the warm-up load
                wrk(live.port, bodies[rows], 16, WARMUP_S)
                for conns in sorted(c for r, c in cases if r == rows):
                    load = wrk(live.port, bodies[rows], conns, args.duration)
                    found.append(Row(server.name, server.kind, server.workers, rows, conns, [load]))
                    flag = f"  ERRORS: {load.errors}" if load.errors else ""
                    say(
                        f"    rows={rows:<3} c={conns:<2} {load.rps:6.0f} req/s  p50 {load.p50_ms:.2f} ms  "
                        f"p99 {load.p99_ms:.2f} ms{flag}"
                    )
        except ServerError as error:
            raise ServerError(f"{error}\n  server log:\n{log_tail(log)}") from None
        return found, pss_mib(live.pid), live.ready_s


def ensure_reference(venv: Path, package: str) -> Path:
    """azmlinfsrv in a scratch venv outside the repo (created once), with this venv's numpy and sklearn."""
    wanted = [package]
    for name in ("numpy", "scikit-learn"):  # the same versions on both sides, for a fair race
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
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *wanted]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise SetupError(f"installing azmlinfsrv failed (or pass --skip-reference):\n{tail}")
    marker.write_text("\n".join(wanted))
    return exe


# ---------------------------------------------------------------------------------------------- report


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
        bare = max((o for o in group if o.kind == "bare" and o.server != BARE_RUN), key=lambda o: o.rps, default=None)
        reference = next((o for o in group if o.kind == "reference"), None)
        if bare:
            row.vs_bare, row.p99_vs_bare = row.rps / bare.rps, row.p99_ms / bare.p99_ms
        if reference:
            row.vs_reference = row.rps / reference.rps
    return rows


def check(name: str, value: float | None, bound: float, at_most: bool = False) -> Target:
    passed = None if value is None else (value <= bound if at_most else value >= bound)
    return Target(name, value, f"{'<=' if at_most else '>='} {bound}", passed)


def targets(rows: list[Row], memory: dict[str, float]) -> list[Target]:
    """The issue's targets: req/s and p99 at TARGET_GROUP, and memory with --preload."""
    found: list[Target] = []
    where = "w{}, {} row, c{}".format(*TARGET_GROUP)
    for name in ("scorehost", "scorehost --preload"):
        row = next((r for r in rows if r.group == TARGET_GROUP and r.server == name), None)
        vs_bare, vs_reference, p99_vs_bare = (row.vs_bare, row.vs_reference, row.p99_vs_bare) if row else (None,) * 3
        found.append(check(f"{name} ({where}) req/s / fastest bare", vs_bare, MIN_VS_BARE))
        found.append(check(f"{name} ({where}) req/s / azmlinfsrv", vs_reference, MIN_VS_REFERENCE))
        found.append(check(f"{name} ({where}) p99 / fastest bare", p99_vs_bare, MAX_P99_VS_BARE, True))
        floor = next((r for r in rows if r.group == TARGET_GROUP and r.server == BARE_RUN), None)
        vs_floor = row.rps / floor.rps if row and floor else None
        found.append(check(f"{name} ({where}) req/s / bare calling run() (info)", vs_floor, MIN_VS_BARE))
    single, preload = memory.get("scorehost w1"), memory.get("scorehost --preload w2")
    ratio = preload / single if single and preload else None
    found.append(check("PSS scorehost --preload w2 / scorehost w1", ratio, MAX_PRELOAD_PSS, True))
    return found


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(headers: str, body: list[list[str]]) -> str:
    """A markdown table, padded so that it also reads well in a terminal; headers split on '|'."""
    columns = headers.split("|")
    widths = [max([len(h), *(len(cells[i]) for cells in body)]) for i, h in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(columns), line(["-" * width for width in widths]), *map(line, body)])


Loads = dict[tuple[str, int], list[Load]]


def start_warm(servers: Sequence[Server], folder: Path, stack: ExitStack, body: Body, conns: int) -> dict[str, int]:
    """Start each server (stopped when `stack` closes), check one answer, warm it up with wrk; their ports."""
    ports: dict[str, int] = {}
    for server in servers:
        live = stack.enter_context(started(server, folder / f"{server.kind}-{len(ports)}.log", 120))
        check_answer(live.port, body)
        wrk(live.port, body, conns, WARMUP_S)
        ports[server.name] = live.port
    return ports


def drive(ports: dict[str, int], body: Body, connections: Sequence[int], repeat: int, duration: int) -> Loads:
    """wrk against each running server at each connection count, round after round (so that drift hits all
    alike); every run is printed as it ends."""
    loads: Loads = {}
    width = max(len(name) for name in ports)
    for round_ in range(1, repeat + 1):
        for name, port in ports.items():
            for conns in connections:
                load = wrk(port, body, conns, duration)
                loads.setdefault((name, conns), []).append(load)
                flag = f"  ERRORS: {load.errors}" if load.errors else ""
                say(
                    f"[round {round_}/{repeat}] {name:<{width}} c={conns:<2} {load.rps:6.0f} req/s  "
                    f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms{flag}"
                )
    return loads


def median_of(loads: Loads, name: str, conns: int, attr: str) -> float:
    return statistics.median(getattr(load, attr) for load in loads[(name, conns)])


def load_table(loads: Loads, baselines: Sequence[str]) -> list[list[str]]:
    """Rows of `server|conns|req/s|p50 ms|p99 ms|<one ratio per baseline>|flag`: medians, and the req/s spread
    over rounds."""
    table = []
    for (name, conns), runs in loads.items():
        rps = median_of(loads, name, conns, "rps")
        spread = f" ({min(x.rps for x in runs):.0f}–{max(x.rps for x in runs):.0f})" * (len(runs) > 1)
        ratios = [fmt(rps / median_of(loads, baseline, conns, "rps")) for baseline in baselines]
        p50, p99 = median_of(loads, name, conns, "p50_ms"), median_of(loads, name, conns, "p99_ms")
        flag = "ERRORS" if sum(x.errors for x in runs) else ""
        table.append([name, str(conns), f"{rps:.0f}{spread}", f"{p50:.2f}", f"{p99:.2f}", *ratios, flag])
    return table


def print_targets(found: list[Target]) -> None:
    """The targets as a table: PASS, FAIL, or SKIP where nothing was measured."""
    verdict = {True: "PASS", False: "FAIL", None: "SKIP"}
    print("\n## Targets\n")
    print(markdown("target|measured|limit|result", [[t.name, fmt(t.value), t.limit, verdict[t.passed]] for t in found]))


def report(
    rows: list[Row], memory: dict[str, float], cold: dict[str, list[float]], failures: list[str]
) -> list[Target]:
    print("\n## Throughput (medians, req/s min–max over rounds; ratios within each workers/rows/conns group)\n")
    columns = "server|workers|rows|conns|req/s|p50 ms|p99 ms|req/s / bare|req/s / azml|p99 / bare|flag"
    print(markdown(columns, [row.cells() for row in rows]))
    print("\n## Memory: PSS of the whole process tree, after load\n")
    print(markdown("server|PSS MiB", [[label, f"{mib:.0f}"] for label, mib in memory.items()]))
    print("\n## Cold start: process start to ready (scorehost GET /ready, the others GET /)\n")
    medians = {label: statistics.median(times) for label, times in cold.items() if times}
    base = medians.get("azmlinfsrv w2")
    table = [[k, f"{m:.2f}", " ".join(f"{t:.2f}" for t in cold[k]), fmt(base and m / base)] for k, m in medians.items()]
    print(markdown("server|median s|runs s|/ azmlinfsrv", table))
    found = targets(rows, memory)
    print_targets(found)
    if flagged := [f"{r.server} w{r.workers} rows={r.rows} c{r.conns}" for r in rows if r.errors]:
        print("\nFLAGGED, non-2xx responses or socket errors:", "; ".join(flagged))
    for failure in failures:
        print(f"\nFAILED {failure}")
    return found


# ---------------------------------------------------------------------------------------------- main


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark scorehost against bare servers and azmlinfsrv.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=1, help="rounds over all servers; medians are reported (default 1)")
    add("--quick", action="store_true", help="only the w2/1-row/c16 group, memory and cold start")
    add("--skip-scorehost", action="store_true", help="bare servers and azmlinfsrv only")
    add("--skip-reference", action="store_true", help="do not install or run azmlinfsrv")
    add("--reference-venv", type=Path, default=CACHE / "azmlinfsrv-venv", help="created once, then reused")
    add("--reference-package", default=REFERENCE_PACKAGE, help=f"default: {REFERENCE_PACKAGE}")
    add("--ready-timeout", type=float, default=120.0, help="seconds to wait for ready (default 120)")
    add("--json", type=Path, metavar="PATH", help="also write every result to PATH as JSON")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.repeat < 1:
        parser.error("--duration and --repeat must be at least 1")
    return args


def find_scorehost() -> Path | None:
    beside = Path(sys.executable).parent / "scorehost"
    found = beside if beside.exists() else shutil.which("scorehost")
    return Path(found) if found else None


def load_rounds(
    plan: list[tuple[Server, list[tuple[int, int]]]],
    bodies: dict[int, Body],
    log: Path,
    args: argparse.Namespace,
    failures: list[str],
) -> tuple[list[Row], dict[str, list[float]]]:
    """Every server of the plan, one after another, round after round (so that drift hits all alike), in a new
    order each round (seeded, so runs are comparable): a server always measured first, or always right after
    the same one, would carry that position's bias in every round."""
    results: list[Row] = []
    pss: dict[str, list[float]] = {}
    for round_ in range(1, args.repeat + 1):
        order = list(plan)
        random.Random(round_).shuffle(order)
        for i, (server, cases) in enumerate(order, 1):
            say(f"[round {round_}/{args.repeat}, server {i}/{len(plan)}] {server.label}")
            try:
                rows, mib, ready_s = measure(server, cases, bodies, log, args)
            except ServerError as error:
                failures.append(f"{server.label}: {error}")
                say(f"    FAILED: {error}")
                continue
            results += rows
            pss.setdefault(server.label, []).append(mib)
            say(f"    ready in {ready_s:.2f} s; PSS after load {mib:.0f} MiB")
    return results, pss


def cold_starts(
    servers: list[Server], log: Path, args: argparse.Namespace, failures: list[str]
) -> dict[str, list[float]]:
    """Seconds from process start to ready, COLD_RUNS times per server, interleaved."""
    times: dict[str, list[float]] = {server.label: [] for server in servers}
    for i in range(1, COLD_RUNS + 1):
        for server in servers:
            try:
                with started(server, log, args.ready_timeout) as live:
                    times[server.label].append(live.ready_s)
                say(f"cold start {i}/{COLD_RUNS} {server.label}: {live.ready_s:.2f} s")
            except ServerError as error:
                failures.append(f"cold start {server.label}: {error}")
    return times


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SetupError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    scorehost = None if args.skip_scorehost else find_scorehost()
    if scorehost is None and not args.skip_scorehost:
        raise SetupError(f"no scorehost beside {sys.executable}: `pip install -e .` first, or --skip-scorehost")
    if (load := os.getloadavg()[0]) > 0.5:
        say(f"warning: load average {load:.1f} on {os.cpu_count()} cores before the start: expect noise")
    reference = None
    if not args.skip_reference:
        reference = ensure_reference(args.reference_venv.expanduser(), args.reference_package)
    groups = [TARGET_GROUP] if args.quick else [(w, r, c) for w in (1, 2) for r in ROWS for c in CONNS]
    servers = servers_for(1, scorehost, reference) + servers_for(2, scorehost, reference)
    plan = [(server, [(r, c) for w, r, c in groups if w == server.workers]) for server in servers]
    plan = [(s, cases) for s, cases in plan if cases or s.label == "scorehost w1"]  # w1: the memory baseline
    cold_servers = [s for s in servers if s.workers == 2 and (s.kind != "bare" or s.name == "granian rsgi")]
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scorehost-bench-") as tmp:
        bodies = {rows: make_body(Path(tmp), rows) for rows in ROWS}
        log = Path(tmp) / "server.log"
        results, pss = load_rounds(plan, bodies, log, args, failures)
        cold = cold_starts(cold_servers, log, args, failures)
    rows = summarize(results)
    memory = {label: statistics.median(values) for label, values in pss.items()}
    found = report(rows, memory, cold, failures)
    if args.json:
        dump = {"throughput": [asdict(row) for row in rows], "pss_mib": pss, "cold_start_s": cold}
        dump |= {"targets": [asdict(t) for t in found], "failures": failures, "args": vars(args)}
        args.json.write_text(json.dumps(dump, indent=2, default=str) + "\n")
    return 1 if failures or any(t.passed is False and "(info)" not in t.name for t in found) else 0


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def run_main(bench: Callable[[], int], interrupted: str = "every server started has been stopped") -> int:
    """The exit status of a benchmark: `bench()`'s, 2 when a tool is missing, 1 when a server failed, 130 when
    interrupted. SIGTERM and SIGHUP interrupt it like Ctrl-C, so that its `finally` blocks stop what it started."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        return bench()
    except SetupError as error:
        say(str(error))
        return 2
    except ServerError as error:
        say(f"FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        say(f"interrupted; {interrupted}")
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_main(lambda: bench(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
