"""Typed settings for `scorehost serve`.

Precedence: command-line flags > `SCOREHOST_*` variables > the reference server's variables
(`AZUREML_ENTRY_SCRIPT`, `AZUREML_MODEL_DIR`, `SERVER_PORT`, `WORKER_COUNT`, `WORKER_PRELOAD`,
`SCORING_TIMEOUT_MS`) > defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scorehost.devices.placement import AUTO, parse_devices
from scorehost.host.run_input import RunInput

__all__ = [
    "ControlPlaneSettings",
    "ServeSettings",
    "WorkspaceSettings",
    "parse_duration",
    "parse_models",
    "parse_size",
    "parse_workers",
]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes from `1048576`, `100MiB`, `10MB` or `512k` (k, M, G: powers of 1000; KiB, MiB, GiB: of 1024)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    unit = (match.group(2) or "").lower().removesuffix("b") if match else "?"
    if match is None or (unit and unit[0] not in "kmgt"):
        raise ValueError(f"{value!r} is not a size; write e.g. 100MiB, 10MB or 1048576")
    factor = (1024 if unit.endswith("i") else 1000) ** ("kmgt".index(unit[0]) + 1) if unit else 1
    return int(float(match.group(1)) * factor)


def format_size(count: int) -> str:
    """A byte count as people read it, the one way scorehost shows sizes: `100.0 MB`, `512 bytes`."""
    from rich.filesize import decimal

    return str(decimal(count))


def _optional_size(value: object) -> int | None:
    """`parse_size`, with None or an empty value meaning "no limit"."""
    return None if value is None or value == "" else parse_size(value)


def parse_workers(value: object) -> int:
    """A worker count; `auto` means one per available core."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return len(os.sched_getaffinity(0)) or 1
    count = int(str(value))
    if count < 1:
        raise ValueError("workers must be at least 1 (or auto)")
    return count


def parse_models(value: object) -> tuple[str, ...]:
    """Model references from `a:1,b:production` (SCOREHOST_MODELS) or from repeated `--model` values; any
    comma-separated list of a variable, or a repeated flag, the same way."""
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(ref.strip() for item in items for ref in str(item).split(",") if ref.strip())


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from `3600`, `90s`, `30m`, `12h` or `7d`."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write e.g. 7d, 12h, 30m or 3600 (seconds)")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


class WorkspaceSettings(BaseSettings):
    """Where scorehost keeps its state: the model registry (and, later, endpoints)."""

    model_config = SettingsConfigDict(env_prefix="SCOREHOST_", case_sensitive=False, extra="ignore")

    home: Path = Path("~/.scorehost")
    """The workspace folder (`SCOREHOST_HOME`): registry database, model store, each server's model folder."""

    registry_url: str | None = None
    """SQLAlchemy URL of the registry's database (`SCOREHOST_REGISTRY_URL`); default: SQLite in `home`."""

    @property
    def workspace(self) -> Path:
        """`home` with `~` expanded, made absolute."""
        return self.home.expanduser().absolute()

    @property
    def database_url(self) -> str:
        """`registry_url`, or the embedded SQLite file `<home>/registry.db`."""
        return self.registry_url or f"sqlite:///{self.workspace / 'registry.db'}"


class ServeSettings(BaseSettings):
    """Everything `scorehost serve` needs; each field documents its flag and variables."""

    model_config = SettingsConfigDict(
        env_prefix="SCOREHOST_", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    entry_script: Path | None = Field(
        default=None, validation_alias=AliasChoices("SCOREHOST_ENTRY_SCRIPT", "AZUREML_ENTRY_SCRIPT")
    )
    """The score.py to serve (`SCRIPT`, `--entry-script`)."""

    model_dir: str | None = Field(
        default=None, validation_alias=AliasChoices("SCOREHOST_MODEL_DIR", "AZUREML_MODEL_DIR")
    )
    """Exported as AZUREML_MODEL_DIR before init() (`--model-dir`)."""

    models: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_models)] = ()
    """Registered models to serve, NAME[:VERSION|:ALIAS] each (`--model`, repeatable; `SCOREHOST_MODELS`,
    comma-separated): laid out from the registry as AZUREML_MODEL_DIR. Excludes `model_dir`."""

    home: Path | None = None
    """The workspace whose registry `models` come from (`--home`, `SCOREHOST_HOME`); default ~/.scorehost."""

    host: str = "127.0.0.1"
    """Interface to bind; 0.0.0.0 exposes the server to the network (`--host`)."""

    port: int = Field(default=5001, ge=0, le=65535, validation_alias=AliasChoices("SCOREHOST_PORT", "SERVER_PORT"))
    """TCP port; 0 picks a free one (`--port`)."""

    uds: str | None = None
    """A Unix socket to listen on instead of TCP, for a proxy on this machine; `@NAME` is an abstract socket
    (`--uds`). Replaces `host` and `port`."""

    workers: Annotated[int, BeforeValidator(parse_workers)] = Field(
        default=1, validation_alias=AliasChoices("SCOREHOST_WORKERS", "WORKER_COUNT")
    )
    """Worker processes, each with its own copy of the model unless preloaded (`--workers N|auto`)."""

    preload: bool = Field(default=False, validation_alias=AliasChoices("SCOREHOST_PRELOAD", "WORKER_PRELOAD"))
    """Run init() once before forking the workers, so they share the model's memory (`--preload`)."""

    devices: Annotated[str, BeforeValidator(parse_devices)] = AUTO
    """GPUs the workers spread over, each worker seeing its own through CUDA_VISIBLE_DEVICES (`--devices
    auto|none|0,1,...`): auto finds them (NVML or nvidia-smi; CUDA_VISIBLE_DEVICES if set), none hides them."""

    workers_per_device: int | None = Field(default=None, ge=1, le=64)
    """Workers per GPU (`--workers-per-device`): the worker count becomes this many times the devices."""

    threads: int = Field(default=1, ge=1, le=256)
    """Concurrent run() calls per worker; above 1 only for thread-safe scripts (`--threads`)."""

    spare_threads: int = Field(default=0, ge=0, le=256)
    """Threads per worker beyond `threads` that take requests while run() is busy (`--spare-threads`)."""

    metrics: bool = True
    """Prometheus metrics at GET /metrics, summed over the workers (`--metrics/--no-metrics`)."""

    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("SCOREHOST_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    """An OTLP/HTTP traces URL (http://collector:4318/v1/traces) to send each scoring request's spans to
    (`--otlp-endpoint`; needs `scorehost[otel]`); unset: no spans leave the server."""

    max_batch_size: int | None = Field(default=None, ge=0, le=4096)
    """Most requests per run_batch() call, for scripts that define it; 0 turns batching off (`--max-batch-size`);
    default: the script's `@scorehost.batch`, else 32."""

    max_batch_wait_ms: float | None = Field(default=None, ge=0, le=10_000)
    """Most milliseconds a batch waits for requests already arriving (`--max-batch-wait-ms`); default 2."""

    timeout: float | None = Field(default=None, gt=0)
    """Seconds a request may take, queueing and run() together (`--timeout`); default 60."""

    scoring_timeout_ms: int | None = Field(default=None, gt=0, validation_alias="SCORING_TIMEOUT_MS")
    """The reference server's variable for the same deadline, in milliseconds; `--timeout` wins."""

    max_queue_wait: float | None = Field(default=None, gt=0, le=3600)
    """Seconds a request may wait for its turn at run() before it is answered 429, unrun (`--max-queue-wait`;
    Azure ML's request_settings.max_queue_wait_ms); default: it may wait its whole deadline."""

    init_timeout: float = Field(default=600.0, gt=0)
    """Seconds init() may take before start-up is abandoned (`--init-timeout`)."""

    max_body_size: Annotated[int, BeforeValidator(parse_size)] = Field(default=100 * 1024 * 1024, ge=0)
    """Largest request body accepted, in bytes or with a unit like 100MiB (`--max-body-size`)."""

    run_input: RunInput = RunInput.AUTO
    """What an undecorated run(data) receives: auto, data or body (`--run-input`)."""

    # Slow clients (http/body_watch.py, http/granian_front.py): how long a request's head and body may take.
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds a request's line and headers may take to arrive, which is also how long an idle keep-alive
    connection stays open; then the connection is closed (`--header-timeout`)."""

    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a request's body may take to arrive after its headers; then the client gets 408 and the
    connection is closed (`--body-timeout`)."""

    graceful_timeout: float = Field(default=30.0, ge=0)
    """Seconds in-flight requests get to finish on SIGTERM before workers are killed."""

    # Process supervision (http/supervisor.py): what makes the supervisor replace a worker that still runs.
    heartbeat_timeout: float = Field(default=30.0, ge=0)
    """Seconds a ready worker may go without a heartbeat (SIGSTOP, C code holding the GIL) before it is killed
    and replaced; 0 turns the check off, e.g. to attach a debugger (`--heartbeat-timeout`)."""

    max_memory_per_worker: Annotated[int | None, BeforeValidator(_optional_size)] = Field(default=None, gt=0)
    """A worker whose resident memory (RSS) grows past this, e.g. 2GiB, is replaced gracefully
    (`--max-memory-per-worker`); unset: no limit."""

    max_requests: int = Field(default=0, ge=0)
    """Requests after which a worker is replaced gracefully, for scripts that leak (`--max-requests`); 0: never."""

    max_requests_jitter: int = Field(default=0, ge=0)
    """Up to this many more requests, drawn per worker, so workers do not recycle together (`--max-requests-jitter`)."""

    cors_origins: str | None = Field(
        default=None, validation_alias=AliasChoices("SCOREHOST_CORS_ORIGINS", "AML_CORS_ORIGINS")
    )
    """Comma-separated origins browsers may call from (`*`, or regular expressions), or none (`--cors-origins`)."""

    app_root: Path | None = Field(default=None, validation_alias=AliasChoices("SCOREHOST_APP_ROOT", "AML_APP_ROOT"))
    """Where a user's own swagger*.json is looked for; default: the entry script's folder."""

    service_name: str = Field(
        default="ML service", validation_alias=AliasChoices("SCOREHOST_SERVICE_NAME", "SERVICE_NAME")
    )
    """The API's title in /swagger.json and /docs."""

    service_version: str = Field(
        default="1.0", validation_alias=AliasChoices("SCOREHOST_SERVICE_VERSION", "SERVICE_VERSION")
    )
    """The API's version in /swagger.json."""

    service_path_prefix: str = Field(
        default="", validation_alias=AliasChoices("SCOREHOST_SERVICE_PATH_PREFIX", "SERVICE_PATH_PREFIX")
    )
    """A prefix for the paths /swagger.json lists, for a server behind a proxy that adds one (no route is added)."""

    debug_errors: bool = False
    """Send what run() raised (its type and message) to callers, for local development only: by default a failed
    run() is answered with the reference's generic message and the details go to the log (`--debug-errors`)."""

    nan_as_null: bool = False
    """Write NaN and infinities in results as `null`, for strict JSON parsers; by default they are sent as `NaN`,
    `Infinity` and `-Infinity`, as the reference server sends them (`--nan-as-null`)."""

    log_format: Literal["text", "json"] = "text"
    """`text` for people, `json` (one object per line) for log collectors (`--log-format`)."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Data collection (docs/data-collection.md): off unless `collect_dir` is set.
    collect_dir: Path | None = None
    """Collect scoring data under this folder: the request and response payloads and what the script's
    `azureml.ai.monitoring.Collector`s collect (`--collect-dir`)."""

    collect: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_models)] = ()
    """The collections to write, NAME or NAME=RATE each (`--collect`, repeatable; comma-separated in
    `SCOREHOST_COLLECT`); none named: every one (request, response and each name a script collects)."""

    collect_sampling_rate: float = Field(default=1.0, ge=0, le=1)
    """The share of requests collected, over all collections (`--collect-sampling-rate`)."""

    collect_headers: Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_models)] = ()
    """Request and response headers logged with the payloads (`--collect-header`); never credentials."""

    collect_rolling_rate: Literal["Minute", "Hour", "Day", "Month", "Year"] = "Hour"
    """How finely the files are partitioned by time (`--collect-rolling-rate`)."""

    collect_max_age: Annotated[float, BeforeValidator(parse_duration)] = Field(default=30 * 86400, ge=0)
    """Collected files older than this are deleted, e.g. 7d; 0 keeps them (`--collect-max-age`)."""

    collect_max_size: Annotated[int, BeforeValidator(parse_size)] = Field(default=5 * 1024**3, ge=0)
    """The oldest collected files go once the folder passes this size, e.g. 5GiB; 0 = no cap (`--collect-max-size`)."""

    collect_max_payload: Annotated[int, BeforeValidator(parse_size)] = Field(default=256 * 1024, ge=1024)
    """Payloads past this size are cut to it and marked truncated (`--collect-max-payload`)."""

    collect_sync_interval: Annotated[float, BeforeValidator(parse_duration)] = Field(default=1.0, ge=0)
    """Collected files are fsynced this often, what a machine that stops can lose (a process that dies loses only
    its last 0.2 s); 0 leaves it to the kernel (`--collect-sync-interval`)."""

    collect_source: str = ""
    """The rows' `source` (the control plane sets /endpoints/E/deployments/D); default /serve/HOSTNAME."""

    collect_model_version: str = ""
    """The rows' `modelversion`; default: the versions --model resolved to (NAME:VERSION, comma-separated)."""

    collect_deployment_version: str = ""
    """The rows' `deploymentversion` (the control plane sets the deployment's generation)."""

    def model_source_conflict(self, model_dir_source: str = "--model-dir / AZUREML_MODEL_DIR") -> str | None:
        """Why `models` and `model_dir` cannot both be set, naming where `model_dir` came from; None if they are not."""
        if not self.models or self.model_dir is None:
            return None
        return (
            f"--model and --model-dir cannot be used together: --model lays out AZUREML_MODEL_DIR from the registry, "
            f"and {model_dir_source} ({self.model_dir}) sets it too. Serve either the registered models (drop "
            "--model-dir, unset AZUREML_MODEL_DIR and SCOREHOST_MODEL_DIR) or the folder (drop --model)."
        )

    @property
    def request_timeout(self) -> float:
        """The per-request deadline in seconds."""
        if self.timeout is not None:
            return self.timeout
        return self.scoring_timeout_ms / 1000 if self.scoring_timeout_ms else 60.0


class ControlPlaneSettings(BaseSettings):
    """The control plane's own limits (`scorehost controlplane start` flags, SCOREHOST_CONTROLPLANE_* variables)."""

    model_config = SettingsConfigDict(env_prefix="SCOREHOST_CONTROLPLANE_", case_sensitive=False, extra="ignore")

    log_max_size: Annotated[int, BeforeValidator(parse_size)] = Field(default=10 * 1024 * 1024, ge=4096)
    """controlplane.log and gateway.log are rotated past this size, e.g. 10MiB (`--log-max-size`,
    `SCOREHOST_CONTROLPLANE_LOG_MAX_SIZE`)."""

    log_backups: int = Field(default=5, ge=1, le=100)
    """Rotated files kept of each log (`--log-backups`, `SCOREHOST_CONTROLPLANE_LOG_BACKUPS`)."""

    restart_backoff_cap: float = Field(default=30.0, gt=0, le=3600)
    """Most seconds between restarts of a gateway that keeps dying: the delay starts at 1 s and doubles up to
    this (`SCOREHOST_CONTROLPLANE_RESTART_BACKOFF_CAP`)."""

    console_sample_interval: float = Field(default=5.0, ge=0.2, le=60)
    """Seconds between the web console's samples of the gateway's and the deployments' metrics (its charts keep
    the last hour) (`SCOREHOST_CONTROLPLANE_CONSOLE_SAMPLE_INTERVAL`)."""

    gateway_probe_timeout: float = Field(default=30.0, ge=0, le=3600)
    """Seconds the gateway may go without answering `GET /` (asked every few seconds) before it is killed and
    restarted: a stopped or stuck gateway still accepts connections, so its exit alone does not show it; 0 = never
    (`SCOREHOST_CONTROLPLANE_GATEWAY_PROBE_TIMEOUT`)."""
