"""`scorehost serve`: host one entry script as a web service."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from scorehost.config import ServeSettings

__all__ = ["serve_command"]

_EPILOG = """
\b
Examples:
  scorehost serve score.py
  scorehost serve score.py --model-dir ./model --workers auto --preload
  scorehost serve score.py --model sklearn_mnist:production --model encoder:3
  scorehost serve score.py --reload      (development: new workers on each saved change)
  scorehost serve score.py --workers-per-device 2    (GPUs: two workers on each, docs/gpu.md)
  scorehost serve --model sklearn-iris        (an MLflow model: no script needed)
  curl -X POST localhost:5001/score -H 'Content-Type: application/json' -d '{"data": [[1, 2]]}'

\b
--model serves models from the registry (see `scorehost models --help`): NAME is the latest
version, NAME:3 a version, NAME:production an alias. One model: AZUREML_MODEL_DIR is its version
folder, holding the registered file or folder. Several: AZUREML_MODEL_DIR holds NAME/VERSION/...
for each. The folder is this server's own (reflinks, or copies where the file system has none), so
what init() writes there reaches neither the registry nor another server; it goes when the server stops.

\b
Every option can also come from the environment: SCOREHOST_<OPTION> (e.g. SCOREHOST_WORKERS=4;
SCOREHOST_MODELS=sklearn_mnist:production,encoder:3 for --model; SCOREHOST_HOME for --home),
or the Azure ML server's variables AZUREML_ENTRY_SCRIPT, AZUREML_MODEL_DIR, SERVER_PORT,
WORKER_COUNT, WORKER_PRELOAD, SCORING_TIMEOUT_MS (milliseconds), AML_CORS_ORIGINS, AML_APP_ROOT,
SERVICE_NAME, SERVICE_VERSION and SERVICE_PATH_PREFIX.
"""


@click.command("serve", epilog=_EPILOG)
@click.argument("script", required=False, type=click.Path(path_type=Path))
@click.option(
    "--entry-script",
    "--entry_script",
    "entry_script",
    type=click.Path(path_type=Path),
    help="The entry script, if not given as SCRIPT.",
)
@click.option("--model-dir", "--model_dir", "model_dir", help="Folder exported as AZUREML_MODEL_DIR before init().")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[:VERSION|:ALIAS]",
    help="A registered model to serve (repeatable), laid out as AZUREML_MODEL_DIR from the registry. "
    "Not with --model-dir.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace whose registry --model reads.  [default: ~/.scorehost]",
)
@click.option("--host", help="Interface to bind.  [default: 127.0.0.1; 0.0.0.0 exposes the server to the network]")
@click.option("--port", type=int, help="TCP port; 0 picks a free one.  [default: 5001]")
@click.option(
    "--uds",
    metavar="PATH",
    help="Listen on a Unix socket at PATH (mode 0600) instead of TCP, for a proxy on this machine such as "
    "nginx; @NAME is a Linux abstract socket. Replaces --host and --port.",
)
@click.option(
    "--workers",
    "--worker_count",
    "workers",
    help="Worker processes, or 'auto' for one per core; each loads the model unless --preload.  [default: 1]",
)
@click.option(
    "--preload/--no-preload",
    default=None,
    help="Run init() once, before forking the workers, so they share the model's memory. init() must then "
    "leave the GPU alone; each worker's init_worker() can move the model there (docs/gpu.md).",
)
@click.option(
    "--devices",
    metavar="auto|none|0,1,...",
    help="GPUs the workers spread over, each seeing its own as CUDA_VISIBLE_DEVICES: auto finds them (NVML or "
    "nvidia-smi, or takes CUDA_VISIBLE_DEVICES), none hides them, 0,1 (indices or UUIDs) names them. The log says "
    "which worker has which GPU (docs/gpu.md).  [default: auto; without a GPU, the CPU as always]",
)
@click.option(
    "--workers-per-device",
    type=click.IntRange(1, 64),
    help="Workers per GPU: the worker count becomes N times the devices (instead of --workers).",
)
@click.option(
    "--threads",
    type=int,
    help="Concurrent run() calls per worker. Keep 1 unless your script is thread-safe.  [default: 1]",
)
@click.option(
    "--spare-threads",
    type=int,
    help="Threads per worker that take requests while run() is busy: they answer GET / and GET /ready, and "
    "hold up to N waiting requests under --timeout. Use 1-4 when run() takes long behind health probes; "
    "costs fast models ~10% throughput.  [default: 0]",
)
@click.option(
    "--max-batch-size",
    type=int,
    help="For scripts that define run_batch(inputs): most requests per call, grouped while run() is busy; "
    "0 turns batching off.  [default: the script's @scorehost.batch, else 32]",
)
@click.option(
    "--max-batch-wait-ms",
    type=float,
    help="Most milliseconds a batch waits for requests already arriving (never when none are).  [default: 2]",
)
@click.option(
    "--timeout",
    type=float,
    help="Seconds a request may take, waiting and run() together; then 504.  [default: 60]",
)
@click.option(
    "--max-queue-wait",
    type=float,
    help="Seconds a request may wait for its turn at run(); then 429, unrun (Azure ML's max_queue_wait_ms).  "
    "[default: its whole --timeout]",
)
@click.option("--init-timeout", type=float, help="Seconds init() may take before start-up fails.  [default: 600]")
@click.option("--max-body-size", help="Largest request body, e.g. 100MiB or 10MB; larger gets 413.  [default: 100MiB]")
@click.option(
    "--header-timeout",
    type=float,
    help="Seconds a request's line and headers may take to arrive (and an idle keep-alive connection stays "
    "open); then the connection is closed.  [default: 10]",
)
@click.option(
    "--body-timeout",
    type=float,
    help="Seconds a request's body may take to arrive after its headers; then 408 and the connection is "
    "closed.  [default: 30]",
)
@click.option(
    "--run-input",
    type=click.Choice(["auto", "data", "body"]),
    help="What run(data) receives: 'data' = JSON text of the body's \"data\" value (documented contract), "
    "'body' = the raw body (what the Azure ML server passes), 'auto' = decide from the script.  "
    "[default: auto]",
)
@click.option(
    "--cors-origins",
    help="Comma-separated origins that browsers may call /score from ('*' for any; entries with regex "
    "characters are regular expressions). Also AML_CORS_ORIGINS.  [default: none, no CORS headers]",
)
@click.option("--graceful-timeout", type=float, help="Seconds in-flight requests get on shutdown.  [default: 30]")
@click.option(
    "--heartbeat-timeout",
    type=float,
    help="Seconds a ready worker may go without a heartbeat (stopped, or stuck in C code that holds the GIL) "
    "before it is killed and replaced; 0 = never (e.g. under a debugger).  [default: 30]",
)
@click.option(
    "--max-memory-per-worker",
    metavar="SIZE",
    help="Replace a worker gracefully once its resident memory passes SIZE, e.g. 2GiB.  [default: no limit]",
)
@click.option(
    "--max-requests",
    type=int,
    help="Replace each worker gracefully after this many requests, for scripts that leak; 0 = never.  [default: 0]",
)
@click.option(
    "--max-requests-jitter",
    type=int,
    help="Add up to this many requests to --max-requests, drawn per worker, so workers recycle at different "
    "times.  [default: 0]",
)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="Send each scoring request's spans (queue, run, serialize) to this OTLP/HTTP traces URL, e.g. "
    "http://127.0.0.1:4318/v1/traces; needs pip install 'scorehost[otel]'. Also OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.",
)
@click.option(
    "--metrics/--no-metrics",
    default=None,
    help="Prometheus metrics at GET /metrics, summed over the workers (docs/observability.md).  [default: on]",
)
@click.option(
    "--debug-errors/--no-debug-errors",
    default=None,
    help="Answer a failed run() with what it raised (type and message), for local development only. By default "
    "callers get the Azure ML server's generic message and the log has the details, with the request id. "
    "Also SCOREHOST_DEBUG_ERRORS=true.",
)
@click.option(
    "--nan-as-null/--nan-as-literal",
    default=None,
    help="Write NaN and infinities in results as null, for strict JSON parsers.  [default: NaN, Infinity, "
    "-Infinity, as the Azure ML server sends them]",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log lines for people (text) or machines (json: one object per line).  [default: text]",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="The least severe lines logged: debug adds each worker's start and readiness; warning and error keep "
    "only problems.  [default: info]",
)
@click.option(
    "--reload",
    is_flag=True,
    help="For development: when code, configuration or model files in the script's folder change, start new "
    "workers and switch to them once their init() succeeded; until then, or if it fails, the current ones serve "
    "on. Not with --preload or --uds; command line only.",
)
@click.option(
    "--collect-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data collection: write request and response payloads, and what the script's azureml.ai.monitoring "
    "Collectors collect, under this folder as hourly JSON-lines files (docs/data-collection.md).  [default: off]",
)
@click.option(
    "--collect",
    metavar="NAME[=RATE]",
    multiple=True,
    help="With --collect-dir: a collection to write (request, response, model_inputs, ...), with its own sampling "
    "rate (0-1); repeatable.  [default: every one]",
)
@click.option(
    "--collect-sampling-rate",
    type=float,
    metavar="RATE",
    help="With --collect-dir: the share of requests collected (0-1), over all collections.  [default: 1]",
)
@click.option(
    "--collect-header",
    "collect_headers",
    metavar="NAME",
    multiple=True,
    help="A request or response header logged with the payloads (repeatable); credentials (Authorization, "
    "cookies, keys, tokens) never are.",
)
@click.option(
    "--collect-rolling-rate",
    type=click.Choice(["Minute", "Hour", "Day", "Month", "Year"]),
    help="One folder of files per this much time.  [default: Hour]",
)
@click.option(
    "--collect-max-age",
    metavar="AGE",
    help="Delete collected files older than AGE, e.g. 7d; 0 keeps them.  [default: 30d]",
)
@click.option(
    "--collect-max-size",
    metavar="SIZE",
    help="Delete the oldest collected files past SIZE, e.g. 5GiB; 0 = no cap.  [default: 5GiB]",
)
@click.option(
    "--collect-sync-interval",
    metavar="SECONDS",
    help="fsync collected files this often: what a machine that stops can lose (a killed process loses only its "
    "last 0.2 s); 0 leaves it to the kernel, for slow disks.  [default: 1]",
)
@click.option(
    "--collect-max-payload",
    metavar="SIZE",
    help="Cut payloads past SIZE, marked truncated.  [default: 256KiB]",
)
@click.option(
    "--environment",
    "environment_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A conda YAML or requirements.txt: serve in a Python environment built from it (with uv, cached in the "
    "workspace: `scorehost environments list`), so the script imports the versions it pins.",
)
@click.option(
    "--nearest-python",
    is_flag=True,
    help="With --environment: if it asks for a Python that is not installed, build it with the nearest one.",
)
@click.option(
    "--env-manager",
    type=click.Choice(["uv", "local"]),
    help="For an MLflow model served without SCRIPT: 'uv' builds the environment its requirements declare, 'local' "
    "serves it with this interpreter (which needs mlflow), as `mlflow models serve --env-manager`.  [default: uv]",
)
def serve_command(
    script: Path | None,
    environment_file: Path | None,
    nearest_python: bool,
    env_manager: str | None,
    reload: bool,
    **options: Any,
) -> None:
    """Serve SCRIPT (a score.py with init() and run()) on http://127.0.0.1:5001.

    init() runs once per worker (or once in all with --preload); each POST /score calls run() with the
    request's input and answers its result as JSON. GET / answers "Healthy" once init() has finished (503
    before, as GET /ready); GET /live answers 200 while the process is alive, init() included.
    """
    from scorehost.http.server import serve

    if reload and script is None and options.get("entry_script") is None:
        raise click.UsageError(
            "--reload watches an entry script's folder: give SCRIPT (an MLflow model served without one has none)"
        )
    if script is None and options.get("entry_script") is None:
        # No script: an MLflow model is served by the built-in one, in its own environment (docs/azureml.md).
        from scorehost.cli.mlflow_builtin import plan_mlflow_serve

        build = environment_file is None and env_manager != "local"
        plan = plan_mlflow_serve(options, build_environment=build, environment_file=environment_file)
        if plan is not None:
            script = plan.script
            if plan.environment is not None:
                _serve_in_environment(None, nearest_python, options.get("home"), plan.environment)  # does not return
    elif env_manager is not None:
        raise click.UsageError("--env-manager is for MLflow models served without a script")
    if environment_file is not None:
        _serve_in_environment(environment_file, nearest_python, options.get("home"))  # does not return
    # An option not given (None, or no --model at all) leaves the field to the environment.
    given = {name: value for name, value in options.items() if value is not None and value != ()}
    if script is not None:
        given["entry_script"] = script
    try:
        settings = ServeSettings(**given)
    except ValidationError as error:
        raise click.UsageError(_describe(error, given)) from None
    conflict = settings.model_source_conflict(_model_dir_source(given))
    if conflict is None and reload:
        from scorehost.http.reload import reload_problem

        conflict = reload_problem(settings)
    if conflict is not None:
        raise click.UsageError(conflict)
    sys.exit(serve(settings, reload=reload))


def _serve_in_environment(
    environment_file: Path | None, nearest_python: bool, home: Path | None, declared: dict[str, Any] | None = None
) -> None:
    """Build (or find) the environment of `environment_file` (or the `declared` specification), then become
    `scorehost serve` on its interpreter, with the same arguments less --environment: the script then sees that
    environment's libraries and nothing of ours but scorehost."""
    from scorehost.azureml.apply import environment_of_file
    from scorehost.cli.progress import LineStatus
    from scorehost.cli.project_options import echo_warnings
    from scorehost.config import WorkspaceSettings
    from scorehost.environments import EnvironmentSpec, ensure_environment
    from scorehost.errors import ScorehostError

    workspace = WorkspaceSettings().workspace if home is None else WorkspaceSettings(home=home).workspace
    warnings: list[str] = []
    try:
        if declared is None:
            assert environment_file is not None
            declared = environment_of_file(environment_file, nearest_python=nearest_python, warnings=warnings)
            echo_warnings(warnings)
        with LineStatus("building the Python environment") as status:
            built = ensure_environment(EnvironmentSpec.from_json(declared), workspace, progress=status)
    except ScorehostError as error:
        raise click.UsageError(error.message) from None
    if "serve" not in sys.argv:
        raise click.UsageError("--environment works from the scorehost command line (scorehost serve ...)")
    arguments: list[str] = []
    skip = False
    for argument in sys.argv[sys.argv.index("serve") + 1 :]:
        if skip:
            skip = False
        elif argument == "--environment":
            skip = True
        elif not argument.startswith("--environment=") and argument != "--nearest-python":
            arguments.append(argument)
    python = str(built.python)
    variables = {**os.environ, "PYTHONPATH": "", "PYTHONNOUSERSITE": "1", "VIRTUAL_ENV": str(built.python.parents[1])}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, [python, "-m", "scorehost", "serve", *arguments], variables)


def _model_dir_source(given: dict[str, Any]) -> str:
    """Where `model_dir` came from: the flag, or the variable that won (SCOREHOST_ first, as in ServeSettings)."""
    if "model_dir" in given:
        return "--model-dir"
    variables = {name.upper() for name in os.environ}
    return "SCOREHOST_MODEL_DIR" if "SCOREHOST_MODEL_DIR" in variables else "AZUREML_MODEL_DIR"


def _describe(error: ValidationError, given: dict[str, Any]) -> str:
    """Name the flag (or the environment variable) each bad value came from, as click does."""
    problems = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        source = f"--{name.replace('_', '-')}" if name in given else name
        problems.append(f"Invalid value for '{source}': {problem['msg'].removeprefix('Value error, ')}.")
    return " ".join(problems)
