#!/usr/bin/env python3
"""Benchmark the model registry: registering against `cp`, and listing many versions, in one run.

Creates its data in a scratch folder (a large file of incompressible bytes, a folder of small files),
then, alternating runs of each under the same conditions, times `cp` and `Registry.register` of the
same data into a fresh SCOREHOST_HOME on the same file system; then registers thousands of versions of
a tiny model and times listing them. Prints markdown tables and the targets as PASS/FAIL, like
bench/run.py. See bench/README.md.
Exit status: 0 all good, 1 a target failed, 2 a tool or disk space is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# bench/run.py's table, target and lookup helpers: this script is run from bench/, so `run` is importable.
from run import SetupError, Target, check, find_scorehost, fmt, markdown, print_targets, run_main, say

from scorehost import Registry

MB = 1_000_000  # throughput in MB/s (decimal), as disk and network speeds are quoted
MIB = 1 << 20
BLOCK = 16 * MIB
MIN_VS_CP, MAX_LIST_MS = 0.7, 100.0
MAX_LAYOUT_S = 1.0  # "a 1 GB model starts serving in well under a second"
WARMUP_ROUNDS = 1  # untimed rounds of every method before the timed ones: caches, allocator, first-touch costs
LIST_RUNS = 7  # in-process list_versions() runs (after one untimed); cheap, so more than --repeat
LARGE, FOLDER, TINY = "large", "folder", "tiny"  # model names in the registries


@dataclass(frozen=True)
class Sizes:
    file_bytes: int
    files: int
    versions: int

    @property
    def file_label(self) -> str:
        return (
            f"{self.file_bytes / (1 << 30):g} GiB file"
            if self.file_bytes >= 1 << 30
            else f"{self.file_bytes // MIB} MiB file"
        )

    @property
    def folder_label(self) -> str:
        return f"{self.files:,} files"


DEFAULT = Sizes(1 << 30, 10_000, 10_000)
QUICK = Sizes(256 * MIB, 2_000, 2_000)


@dataclass
class Timing:
    """Timed runs of one method on one data set."""

    data: str
    method: str
    nbytes: int
    files: int
    baseline: str | None = None  # the method of the same data set this one is compared with
    info: bool = False
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def mbps(self) -> float:
        return self.nbytes / MB / self.median


# ---------------------------------------------------------------------------------------------- data


def make_large(path: Path, size: int) -> None:
    """`size` bytes of os.urandom: one random block written again and again, each time with a new prefix.

    Random bytes cannot be compressed, and the prefix keeps the blocks from being identical; the store
    dedupes whole files only, so repeated content inside one file changes nothing it does.
    """
    block = bytearray(os.urandom(BLOCK))
    view = memoryview(block)
    with open(path, "wb", buffering=0) as out:
        written = 0
        while written < size:
            block[:8] = (written // BLOCK).to_bytes(8, "little")
            count = min(BLOCK, size - written)
            out.write(view[:count])
            written += count


def make_folder(root: Path, files: int) -> int:
    """`files` files of 1–8 KiB with distinct content, 1,000 per subfolder; returns their total bytes."""
    pool = os.urandom(MIB)
    total = 0
    for i in range(files):
        size = 1024 + (i * 7919) % 7169  # 1,024–8,192 bytes, spread evenly
        offset = (i * 4099) % (len(pool) - 8192)
        folder = root / f"part{i // 1000:02d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:05d}.bin").write_bytes(f"{i:08d}".encode() + pool[offset : offset + size - 8])
        total += size
    return total


def read_all(path: Path) -> None:
    """Read every byte under `path` once, so that the timed runs all read from the page cache."""
    targets = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    buffer = bytearray(BLOCK)
    for target in targets:
        with open(target, "rb", buffering=0) as source:
            while source.readinto(buffer):
                pass


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _libc_syncfs()


def syncfs(path: Path) -> None:
    """Flush the file system holding `path`, as the store does once per registration."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs is None or _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def settle(*paths: Path) -> None:
    """Drop what the last run wrote and flush every write, so that no run pays for its predecessor's."""
    for path in paths:
        remove(path)
    os.sync()


# ---------------------------------------------------------------------------------------------- copies


@functools.cache
def cp_reflink_never() -> list[str]:
    help_text = subprocess.run(["cp", "--help"], capture_output=True, text=True, check=False).stdout
    # A clone (btrfs, XFS) would copy no data at all; ext4 never clones, but the flag says so anyway.
    return ["--reflink=never"] if "--reflink" in help_text else []


def cp_argv(source: Path, destination: Path) -> list[str]:
    return ["cp", *cp_reflink_never(), *(["-r"] if source.is_dir() else []), str(source), str(destination)]


def time_cp(argv: list[str], destination: Path) -> tuple[float, float]:
    """(cp's seconds, cp's seconds plus a syncfs of the copy): the latter is what register guarantees."""
    begin = time.perf_counter()
    subprocess.run(argv, check=True)
    copied = time.perf_counter()
    syncfs(destination)
    return copied - begin, time.perf_counter() - begin


def time_register(home: Path, name: str, source: Path, nbytes: int) -> float:
    """Seconds for one Registry.register into `home`, created (and flushed) before the clock starts."""
    with Registry(home) as registry:
        os.sync()  # the new workspace's database and folders: not part of the copy
        begin = time.perf_counter()
        version = registry.register(name, source)
        seconds = time.perf_counter() - begin
    if version.size != nbytes:
        raise RuntimeError(f"registered {version.size} bytes of {source}, expected {nbytes}")
    return seconds


def time_cli_register(scorehost: Path, home: Path, name: str, source: Path) -> float:
    """Seconds for `scorehost models register` as a process: start-up, import and the registration."""
    env = {**os.environ, "SCOREHOST_HOME": str(home)}
    argv = [str(scorehost), "models", "register", name, str(source), "--no-progress", "--json"]
    begin = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - begin


def compare_copies(source: Path, label: str, nbytes: int, files: int, scratch: Path, repeat: int) -> list[Timing]:
    """cp, cp + syncfs and register of `source`, alternating which goes first, each from a clean state.

    A file's copies are deleted before the next run. A folder's stay in the scratch folder until the end,
    when nothing is timed any more: ext4 without a journal scans past every inode deleted in the last
    minute (`recently_deleted()`) each time it creates one, so 10,000 files created right after 10,000
    deletions cost seconds of kernel time, which would land on whatever ran next.
    """
    cp = Timing(label, "cp", nbytes, files)
    cp_sync = Timing(label, "cp + syncfs", nbytes, files, baseline="cp", info=True)
    register = Timing(label, "Registry.register", nbytes, files, baseline="cp")
    keep = source.is_dir()
    made: list[Path] = []

    def fresh(prefix: str) -> Path:
        if made and not keep:
            remove(made.pop())
        made.append(scratch / f"{prefix}-{len(made)}")
        os.sync()
        return made[-1]

    def run_cp(timed: bool) -> None:
        destination = fresh("cp")
        plain, synced = time_cp(cp_argv(source, destination), destination)
        if timed:
            cp.runs.append(plain)
            cp_sync.runs.append(synced)
        say(f"    cp: {plain:.3f} s, with syncfs {synced:.3f} s{'' if timed else ' (warm-up)'}")

    def run_register(timed: bool) -> None:
        seconds = time_register(fresh("home"), FOLDER if keep else LARGE, source, nbytes)
        if timed:
            register.runs.append(seconds)
        say(f"    register: {seconds:.3f} s{'' if timed else ' (warm-up)'}")

    for round_ in range(WARMUP_ROUNDS + repeat):
        timed = round_ >= WARMUP_ROUNDS
        # Alternate the order, so that neither method always runs right after the other.
        for step in (run_cp, run_register) if round_ % 2 == 0 else (run_register, run_cp):
            step(timed)
    if not keep:
        settle(*made)
    return [cp, cp_sync, register]


def cli_and_dedupe(source: Path, label: str, nbytes: int, scratch: Path, repeat: int) -> list[Timing]:
    """For information: register through the CLI, and re-registering content the store already has."""
    found: list[Timing] = []
    scorehost = find_scorehost()
    if scorehost is None:
        say("no scorehost executable beside this Python: the CLI row is skipped (`pip install -e .`)")
    else:
        cli = Timing(label, "scorehost models register (CLI)", nbytes, 1, baseline="cp", info=True)
        home = scratch / "home-cli"
        for _ in range(repeat):
            settle(home)
            cli.runs.append(time_cli_register(scorehost, home, LARGE, source))
            say(f"    CLI register: {cli.runs[-1]:.3f} s")
        settle(home)
        found.append(cli)
    again = Timing(label, "register again (same content, one blob)", nbytes, 1, baseline="cp", info=True)
    home = scratch / "home-dedupe"
    with Registry(home) as registry:
        registry.register(LARGE, source)
        for _ in range(repeat):
            os.sync()
            begin = time.perf_counter()
            registry.register(LARGE, source)
            again.runs.append(time.perf_counter() - begin)
            say(f"    register again: {again.runs[-1]:.3f} s")
        blobs = sum(1 for _ in registry.store.digests())
        # `scorehost serve --model` lays the version out as AZUREML_MODEL_DIR: links, no copy, so a large
        # model is ready to load at once; the first layout builds the tree, later ones reuse it.
        for method in ("serve layout (first time)", "serve layout (again, reused)"):
            layout = Timing(label, method, nbytes, 1, baseline="cp", info=True)
            for _ in range(repeat):
                if "first" in method:
                    shutil.rmtree(home / "layouts", ignore_errors=True)
                begin = time.perf_counter()
                registry.model_dir([LARGE])
                layout.runs.append(time.perf_counter() - begin)
            say(f"    {method}: {statistics.median(layout.runs) * 1000:.2f} ms")
            found.append(layout)
    if blobs != 1:
        raise RuntimeError(f"{repeat + 1} registrations of one content left {blobs} blobs, expected 1")
    settle(home)
    return [*found, again]


# ---------------------------------------------------------------------------------------------- listing


@dataclass
class Listing:
    versions: int
    fill_s: float = 0.0
    list_versions_ms: list[float] = field(default_factory=list)
    list_models_ms: list[float] = field(default_factory=list)
    cli_list_ms: list[float] = field(default_factory=list)
    cli_models_ms: list[float] = field(default_factory=list)


def time_ms(call: Callable[[], object], runs: int) -> list[float]:
    call()  # untimed: the first query also pays for opening the connection and SQLAlchemy's compile cache
    found = []
    for _ in range(runs):
        begin = time.perf_counter()
        call()
        found.append((time.perf_counter() - begin) * 1000)
    return found


def time_cli_ms(scorehost: Path, home: Path, args: list[str], expected: int, runs: int) -> list[float]:
    env = {**os.environ, "SCOREHOST_HOME": str(home)}
    found = []
    for _ in range(runs):
        begin = time.perf_counter()
        done = subprocess.run(
            [str(scorehost), "models", "list", *args, "--json"], env=env, capture_output=True, check=True
        )
        found.append((time.perf_counter() - begin) * 1000)
        if len(json.loads(done.stdout)) != expected:
            raise RuntimeError(f"scorehost models list {' '.join(args)} printed the wrong number of entries")
    return found


def listing(scratch: Path, versions: int, repeat: int) -> Listing:
    """Register `versions` versions of a tiny file (one tag each, two aliases), then time listing them."""
    result = Listing(versions)
    tiny, home = scratch / "tiny.json", scratch / "home-versions"
    tiny.write_text('{"weights": [0.5, -1.25]}\n')
    with Registry(home) as registry:
        begin = time.perf_counter()
        for i in range(1, versions + 1):
            registry.register(TINY, tiny, tags={"run": f"run-{i:05d}"})
            if i % 1000 == 0:
                say(f"    {i:,} versions registered in {time.perf_counter() - begin:.1f} s")
        result.fill_s = time.perf_counter() - begin
        registry.set_alias(TINY, "production", 1)
        registry.set_alias(TINY, "staging", versions)
        if len(registry.list_versions(TINY)) != versions:
            raise RuntimeError(f"list_versions({TINY!r}) did not return {versions} versions")
        result.list_versions_ms = time_ms(lambda: registry.list_versions(TINY), max(LIST_RUNS, repeat))
        result.list_models_ms = time_ms(registry.list_models, max(LIST_RUNS, repeat))
    scorehost = find_scorehost()
    if scorehost is not None:
        result.cli_list_ms = time_cli_ms(scorehost, home, [TINY], versions, repeat)
        result.cli_models_ms = time_cli_ms(scorehost, home, [], 1, repeat)
    settle(home)
    return result


# ---------------------------------------------------------------------------------------------- report


def spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}" if len(values) > 1 else ""


def report(copies: list[Timing], listed: Listing) -> list[Target]:
    print("\n## Copying: cp vs Registry.register (medians; page cache warm; every run starts with nothing dirty)\n")
    rows = []
    for timing in copies:
        base = next((t for t in copies if t.data == timing.data and t.method == timing.baseline), None)
        per_file = f"{timing.files / timing.median:,.0f}" if timing.files > 1 else ""
        rows.append(
            [
                timing.data,
                timing.method + " (info)" * timing.info,
                f"{timing.median:.3f}",
                spread(timing.runs, 3),
                f"{timing.mbps:,.0f}",
                per_file,
                fmt(base.median / timing.median if base else None),
            ]
        )
    print(markdown("data|method|median s|min–max s|MB/s|files/s|speed / cp", rows))

    n = f"{listed.versions:,}"
    print(f"\n## Listing {n} versions (registered one by one in {listed.fill_s:.1f} s, ", end="")
    print(f"{listed.fill_s / listed.versions * 1000:.2f} ms each)\n")
    table: list[tuple[str, list[float]]] = [
        (f"Registry.list_versions (in-process, {n} versions)", listed.list_versions_ms),
        ("Registry.list_models (in-process, 1 model)", listed.list_models_ms),
        (f"scorehost models list {TINY} --json (process, end to end)", listed.cli_list_ms),
        ("scorehost models list --json (process; start-up baseline)", listed.cli_models_ms),
    ]
    print(
        markdown(
            "what|median ms|min–max ms",
            [[what, f"{statistics.median(ms):.1f}", spread(ms, 1)] for what, ms in table if ms],
        )
    )

    def ratio(data: str, method: str, against: str = "cp") -> float | None:
        found = {t.method: t for t in copies if t.data == data}
        return found[against].median / found[method].median if method in found and against in found else None

    large, folder = copies[0].data, copies[-1].data
    found = [
        check(f"register / cp, {large} (speed ratio)", ratio(large, "Registry.register"), MIN_VS_CP),
        check(f"register / (cp + syncfs), {large} (info)", ratio(large, "Registry.register", "cp + syncfs"), MIN_VS_CP),
        check(f"register / cp -r, {folder} (info)", ratio(folder, "Registry.register"), MIN_VS_CP),
        check(
            f"register / (cp -r + syncfs), {folder} (info)",
            ratio(folder, "Registry.register", "cp + syncfs"),
            MIN_VS_CP,
        ),
        check(f"list_versions, {n} versions (ms)", statistics.median(listed.list_versions_ms), MAX_LIST_MS, True),
    ]
    for timing in copies:
        if timing.method.startswith("serve layout"):
            found.append(check(f"{timing.method}, {large} model (s)", timing.median, MAX_LAYOUT_S, True))
    print_targets(found)
    return found


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the scorehost model registry: Registry.register against cp (a "
        f"{DEFAULT.file_label} and a folder of {DEFAULT.folder_label} of 1–8 KiB), and listing "
        f"{DEFAULT.versions:,} versions. Targets: register >= {MIN_VS_CP} x cp's speed for the large file; "
        f"Registry.list_versions of {DEFAULT.versions:,} versions <= {MAX_LIST_MS:g} ms. All data is created in "
        "a scratch folder, on the same file system as the registries it fills, and removed at the end.",
        epilog="See bench/README.md. Exit status: 0 all good, 1 a target failed, 2 a tool or disk space is "
        "missing, 130 interrupted.",
    )
    add = parser.add_argument
    add("--repeat", type=int, default=3, help="timed runs of each method; medians are reported (default 3)")
    add(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK.file_label}, {QUICK.folder_label}, {QUICK.versions:,} versions",
    )
    add("--dir", type=Path, help="create the scratch folder in DIR (default: the system's temporary folder)")
    add("--keep", action="store_true", help="keep the scratch folder (its path is printed)")
    add("--json", type=Path, metavar="PATH", help="also write every result to PATH as JSON")
    add("--file-mib", type=int, help="size of the large file in MiB (overrides the default or --quick size)")
    add("--files", type=int, help="number of small files in the folder (overrides)")
    add("--versions", type=int, help="number of versions to register and list (overrides)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or any(v is not None and v < 1 for v in (args.file_mib, args.files, args.versions)):
        parser.error("--repeat, --file-mib, --files and --versions must be at least 1")
    return args


def bench(args: argparse.Namespace) -> int:
    base = QUICK if args.quick else DEFAULT
    sizes = Sizes(
        args.file_mib * MIB if args.file_mib else base.file_bytes,
        args.files or base.files,
        args.versions or base.versions,
    )
    parent = (args.dir or Path(tempfile.gettempdir())).expanduser().resolve()
    if not parent.is_dir():
        raise SetupError(f"--dir {parent} is not a folder")
    # The large file, cp's copy, a blob and a dedupe pass's temporary copy may coexist; every copy of the
    # folder is kept to the end (8 KiB a file is the most it takes), plus 2 copies: the source and slack.
    needed = 4 * sizes.file_bytes + (2 * (WARMUP_ROUNDS + args.repeat) + 2) * sizes.files * 8192
    if (free := shutil.disk_usage(parent).free) < needed:
        raise SetupError(f"{parent} has {free / MB:,.0f} MB free; this run needs about {needed / MB:,.0f} MB")
    if shutil.which("cp") is None:
        raise SetupError("cp is not on PATH")
    if (load := os.getloadavg()[0]) > 0.5:
        say(f"warning: load average {load:.1f} on {os.cpu_count()} cores before the start: expect noise")
    scratch = Path(tempfile.mkdtemp(prefix="scorehost-bench-registry-", dir=parent))
    try:
        say(f"scratch folder {scratch}: writing a {sizes.file_label} and {sizes.folder_label} ...")
        large, folder = scratch / "model.bin", scratch / "model-folder"
        make_large(large, sizes.file_bytes)
        folder_bytes = make_folder(folder, sizes.files)
        os.sync()
        read_all(large)
        read_all(folder)
        say(f"{sizes.file_label}: cp and register, {WARMUP_ROUNDS} warm-up and {args.repeat} timed rounds")
        copies = compare_copies(large, sizes.file_label, sizes.file_bytes, 1, scratch, args.repeat)
        copies += cli_and_dedupe(large, sizes.file_label, sizes.file_bytes, scratch, args.repeat)
        say(f"{sizes.folder_label}: cp -r and register, {WARMUP_ROUNDS} warm-up and {args.repeat} timed rounds")
        copies += compare_copies(folder, sizes.folder_label, folder_bytes, sizes.files, scratch, args.repeat)
        say(f"registering {sizes.versions:,} versions of a tiny file, then listing them")
        listed = listing(scratch, sizes.versions, args.repeat)
    finally:
        if args.keep:
            say(f"kept the scratch folder {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    found = report(copies, listed)
    if args.json:
        dump = {
            "sizes": asdict(sizes),
            "copies": [asdict(t) | {"median_s": t.median, "mb_per_s": t.mbps} for t in copies],
            "listing": asdict(listed),
            "targets": [asdict(t) for t in found],
            "args": vars(args),
        }
        args.json.write_text(json.dumps(dump, indent=2, default=str) + "\n")
    return 1 if any(t.passed is False and "(info)" not in t.name for t in found) else 0


def main(argv: list[str] | None = None) -> int:
    # SIGTERM and SIGHUP too remove the scratch data (the `finally` block)
    return run_main(lambda: bench(parse_args(argv)), "the scratch data has been removed (unless --keep)")


if __name__ == "__main__":
    sys.exit(main())
