#!/usr/bin/env python3
"""Benchmark a PyTorch model on the GPU, in one run: scorehost with `--devices auto --workers 2` against the same
model on the CPU (`--devices none`), with `run_batch()` on the GPU, and a bare server calling the script's run().

The model is scripts/torch_mlp (a 3x4096 MLP; each worker puts it on its own GPU when it has one). wrk drives
each server in turn (-t1, 1-row bodies, 1, 16 and 64 connections, after a warm-up), round after round; the
script prints req/s, p50/p99 and ratios against the bare GPU server and the CPU server, the start-up log's
device lines, and the /metrics GPU lines. Without a GPU it says so and measures the CPU servers only (so the
script can be tried anywhere). Needs torch and wrk: `pip install -e '.[bench,gpu]' torch`.
Exit status: 0 all good, 1 a server failed, 2 a tool is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from run import (
    BENCH,
    Loads,
    Server,
    SetupError,
    drive,
    find_scorehost,
    load_table,
    make_body,
    markdown,
    run_main,
    say,
    start_warm,
)

SCRIPT = BENCH / "scripts" / "torch_mlp" / "score.py"
CONNECTIONS = (1, 16, 64)
GPU, GPU_BATCHED, CPU, BARE_GPU = (
    "scorehost gpu",
    "scorehost gpu, run_batch()",
    "scorehost cpu",
    "granian wsgi run() gpu",
)


def gpu_count() -> int:
    """CUDA devices torch sees, asked in a child process (this one must not hold a CUDA context)."""
    probe = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SetupError(f"torch does not import here: {done.stderr.strip()[-300:]} (pip install torch)")
    return int(done.stdout.strip() or 0)


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SetupError("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    scorehost = find_scorehost()
    if scorehost is None:
        raise SetupError(f"no scorehost beside {sys.executable}: `pip install -e '.[bench,gpu]'` first")
    gpus = gpu_count()
    say(f"torch sees {gpus} GPU(s)" + ("" if gpus else ": measuring the CPU servers only"))
    q = shlex.quote
    serve = f"{q(str(scorehost))} serve {q(str(SCRIPT))} --host 127.0.0.1 --port {{port}} --workers {args.workers}"
    env = (("PYTHONPATH", str(BENCH)), ("BENCH_ENTRY_SCRIPT", str(SCRIPT)))
    servers = [Server(CPU, "scorehost", args.workers, f"{serve} --devices none --max-batch-size 0", "/ready")]
    if gpus:
        servers = [
            Server(GPU, "scorehost", args.workers, f"{serve} --devices auto --max-batch-size 0", "/ready"),
            Server(GPU_BATCHED, "scorehost", args.workers, f"{serve} --devices auto --max-batch-size 32", "/ready"),
            *servers,
            Server(
                BARE_GPU,
                "bare",
                args.workers,
                f"{q(sys.executable)} -m granian --host 127.0.0.1 --port {{port}} --workers {args.workers} "
                "--interface wsgi --blocking-threads 1 servers.wsgi_app:run_app",
                env=env,
            ),
        ]
    with tempfile.TemporaryDirectory(prefix="scorehost-gpu-bench-") as tmp, ExitStack() as stack:
        body = make_body(Path(tmp), 1)
        ports = start_warm(servers, Path(tmp), stack, body, 16)
        show_devices(Path(tmp))
        if gpus:
            show_gpu_metrics(ports[GPU])
        loads = drive(ports, body, CONNECTIONS, args.repeat, args.duration)
    return report(loads, args, gpus)


def show_devices(folder: Path) -> None:
    """What each scorehost server's start-up log says about devices."""
    print("\n## Devices (start-up logs)\n")
    for log in sorted(folder.glob("scorehost-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if " devices: " in line:
                print(f"    {log.stem}: {line.split(' - ', 1)[-1]}")


def show_gpu_metrics(port: int) -> None:
    """The GPU lines of GET /metrics after the warm-up."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    lines = [line for line in text.splitlines() if line.startswith("scorehost_gpu_")]
    print("\n## /metrics GPU lines (scorehost gpu, after the warm-up)\n")
    print(
        "\n".join(f"    {line}" for line in lines)
        or "    (none: is nvidia-ml-py installed? pip install 'scorehost[gpu]')"
    )


def report(loads: Loads, args: argparse.Namespace, gpus: int) -> int:
    print(f"\n## PyTorch MLP, --workers {args.workers}, 1-row bodies; medians of {args.repeat} round(s)\n")
    baselines = (BARE_GPU, CPU) if gpus else (CPU,)
    header = "server|conns|req/s|p50 ms|p99 ms|" + "|".join(f"req/s / {b}" for b in baselines) + "|flag"
    print(markdown(header, load_table(loads, baselines)))
    errors = any(x.errors for runs in loads.values() for x in runs)
    return 1 if errors else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark a PyTorch model served on the GPU and on the CPU.")
    add = parser.add_argument
    add("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add("--repeat", type=int, default=2, help="rounds; medians are reported (default 2)")
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
