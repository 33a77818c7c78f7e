"""One-off: record what the reference server (azmlinfsrv 1.5.1) answers on GET /swagger.json for each fixture script.

Run from the repository root with scorehost's virtualenv active:

    python tests/data/swagger/make_expected.py

It starts `azmlinfsrv --entry_script <script> --port <free port>` from tests/scripts (so AML_APP_ROOT is that
folder), fetches /swagger.json for versions 2, 3 and 3.1 (and the aliases 2.0 and 3.0, checked to be the same
documents) and the 404 bodies for bad versions, and writes them under tests/data/swagger/<case>/. The reference's
virtualenv has no pandas; the one from scorehost's virtualenv is lent to it through PYTHONPATH (same numpy).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parents[1] / "scripts"
REFERENCE = Path.home() / ".cache/scorehost-bench/azmlinfsrv-venv/bin/azmlinfsrv"

# case name -> (script in tests/scripts, extra environment)
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "echo": ("echo.py", {}),
    "typed_rawhttp": ("typed_rawhttp.py", {}),
    "typed_sklearn_numpy": ("typed_sklearn_numpy.py", {}),
    "typed_pandas_records": ("typed_pandas_records.py", {}),
    "typed_nested_standard": ("typed_nested_standard.py", {}),
    "typed_power_bi": ("typed_power_bi.py", {}),
    "typed_request_headers": ("typed_request_headers.py", {}),
    "typed_defaults": ("typed_defaults.py", {}),
    "typed_unconverted": ("typed_unconverted.py", {}),
    "typed_mixed_list": ("typed_mixed_list.py", {}),
    "typed_output_only": ("typed_output_only.py", {}),
    "typed_date_sample": ("typed_date_sample.py", {}),
    "service_settings": (
        "typed_sklearn_numpy.py",
        {"SERVICE_NAME": "digits", "SERVICE_VERSION": "2.1", "SERVICE_PATH_PREFIX": "/api/v1/"},
    ),
}
VERSIONS = {"2": ["2", "2.0"], "3": ["3", "3.0"], "3.1": ["3.1"]}
BAD_VERSIONS = {"bad_version_4": "4", "bad_version_empty": ""}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_healthy(process: subprocess.Popen[str], base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azmlinfsrv exited with {process.returncode}")
        try:
            with urllib.request.urlopen(base + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("azmlinfsrv never answered GET /")


def record(case: str, script: str, extra_env: dict[str, str], pandas_overlay: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "SERVICE_"))},
        "PYTHONPATH": str(pandas_overlay),
        **extra_env,
    }
    out = HERE / case
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [str(REFERENCE), "--entry_script", script, "--port", str(port)],
            cwd=SCRIPTS,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            wait_healthy(process, base)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            fetch_all(case, base, out)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.seek(0)
        mode_lines = [line.split(" - ", 1)[-1] for line in log if "run() is" in line]
    (out / "mode.txt").write_text("".join(mode_lines[:1]), encoding="utf-8")
    print(f"{case}: {', '.join(sorted(p.name for p in out.iterdir()))}")


def fetch_all(case: str, base: str, out: Path) -> None:
    for name, aliases in VERSIONS.items():
        answers = [get(f"{base}/swagger.json?version={alias}") for alias in aliases]
        status, body = answers[0]
        if status == 200:
            assert all(answer == answers[0] for answer in answers), f"{case}: aliases of {name} differ"
            write(out / f"swagger{name}.json", body)
        else:  # the message names the version as asked for, so each alias has its own
            for alias, (alias_status, alias_body) in zip(aliases, answers, strict=True):
                write(out / f"swagger{alias}.{alias_status}.json", alias_body)
        if name == "2":
            assert get(f"{base}/swagger.json") == answers[0], f"{case}: no version is not version 2"
    for file_name, version in BAD_VERSIONS.items():
        status, body = get(f"{base}/swagger.json?version={version}")
        assert status == 404, f"{case}: version {version!r} answered {status}"
        write(out / f"{file_name}.json", body)


def write(path: Path, body: object) -> None:
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    import pandas  # scorehost's own, lent to the reference

    with tempfile.TemporaryDirectory() as overlay:
        os.symlink(Path(pandas.__file__).parent, Path(overlay) / "pandas")
        for case, (script, extra_env) in CASES.items():
            record(case, script, extra_env, Path(overlay))


if __name__ == "__main__":
    sys.exit(main())
