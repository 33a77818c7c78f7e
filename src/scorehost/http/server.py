"""`serve()`: check the script, bind the port, optionally preload, then hand over to the supervisor.

The log says where the server will answer as soon as the port is bound ("starting on"), and that it serves
("listening on") only once a worker's `init()` has succeeded: a script that cannot start never claims to listen.
"""

from __future__ import annotations

import logging
import os
import sys

from scorehost import __version__
from scorehost.config import ServeSettings, format_size
from scorehost.devices.cuda_state import gpu_context_sign, preload_refusal
from scorehost.devices.placement import Placement, PlacementError, plan_placement
from scorehost.errors import InvalidModelReference, RegistryError, ScorehostError, ScriptLoadError
from scorehost.host.entry import EntryScript
from scorehost.host.loader import resolve_script
from scorehost.http.collecting import collection_settings
from scorehost.http.collecting import describe as describe_collection
from scorehost.http.preflight import settings_problem
from scorehost.http.registered import ServedModels, lay_out_models, parse_model_refs
from scorehost.http.reload import reload_problem
from scorehost.http.startup import load_and_init
from scorehost.http.supervisor import Supervisor
from scorehost.http.worker import EXIT_BOOT_FAILED
from scorehost.sockets import UnixSocketFile, bind_sockets, bind_unix_socket
from scorehost.telemetry.logs import configure_logging
from scorehost.telemetry.prometheus import prepare_multiprocess, remove_multiprocess
from scorehost.telemetry.spans import describe_export
from scorehost.url_handoff import take_url

__all__ = ["serve"]

logger = logging.getLogger("scorehost")


def serve(settings: ServeSettings, *, reload: bool = False) -> int:
    """Serve the entry script until SIGTERM/SIGINT; return the exit code (3: the script or its models cannot serve).
    With `reload`, new workers take over whenever the script's folder changes (http/reload.py)."""
    configure_logging(settings.log_format, settings.log_level)
    try:
        # First of all: the pipe is closed and its variable gone before any worker or script could inherit them.
        registry_url = take_url()
    except RegistryError as error:
        logger.error("%s", error.message)
        return 2
    if settings.entry_script is None:
        logger.error("No entry script given: `scorehost serve path/to/score.py` (or set AZUREML_ENTRY_SCRIPT).")
        return 2
    try:
        script_path = resolve_script(settings.entry_script)
    except ScriptLoadError as error:
        logger.error("%s", error)
        return EXIT_BOOT_FAILED
    settings = settings.model_copy(update={"entry_script": script_path})
    problem = settings_problem(settings)  # once here, before any worker could fail on it again and again
    if problem is None and reload:
        problem = reload_problem(settings)
    if problem is not None:
        logger.error("%s", problem)
        return 2
    served: ServedModels | None = None
    if settings.models:
        try:
            refs = parse_model_refs(settings.models)
        except InvalidModelReference as error:
            logger.error("Invalid value for '--model': %s", error.message)
            return 2
        try:
            served = lay_out_models(refs, settings.home, url=registry_url)
        except RegistryError as error:
            logger.error("%s", error.message)
            return EXIT_BOOT_FAILED
        os.environ["AZUREML_MODEL_DIR"] = str(served.model_dir)
        if not settings.collect_model_version:  # collected rows name the versions that answered, not the aliases
            settings.collect_model_version = ",".join(version.split(" ")[0] for version in served.versions)
    elif settings.model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = settings.model_dir
    try:
        placement = plan_placement(
            settings.devices,
            settings.workers,
            settings.workers_per_device,
            workers_given="workers" in settings.model_fields_set,
        )
    except PlacementError as error:
        logger.error("%s", error)
        return 2
    settings = settings.model_copy(update={"workers": placement.workers})
    socket_file: UnixSocketFile | None = None
    try:
        if settings.uds is not None:
            sock, socket_file = bind_unix_socket(settings.uds)
            sockets, where = [sock] * settings.workers, f"unix:{settings.uds}"  # the workers share it
        else:
            sockets = bind_sockets(settings.host, settings.port, settings.workers)
            host = f"[{settings.host}]" if ":" in settings.host else settings.host
            where = f"http://{host}:{sockets[0].getsockname()[1]}"
    except ScorehostError as error:
        logger.error("%s", error)
        return 1
    metrics_folder = prepare_multiprocess() if settings.metrics else None  # before a worker imports the client
    try:
        _log_banner(settings, where, served, placement)
        if reload:
            # A .pyc written now could outlive an edit made within the same second, of the same size: with none
            # written, each new worker compiles the folder's code afresh (installed packages keep theirs).
            sys.dont_write_bytecode = True
        script: EntryScript | None = None
        if settings.preload:
            try:
                script = load_and_init(settings, per_worker=False)  # init_worker() runs after the fork
                sign = gpu_context_sign()
                refusal = None if sign is None else preload_refusal(sign)
            except ScriptLoadError as error:
                refusal = f"The entry script cannot be served.\n{error}"
            if refusal is not None:
                logger.error("%s", refusal)
                for sock in sockets:
                    sock.close()
                return EXIT_BOOT_FAILED
        return Supervisor(settings, sockets, script, where, reload=reload, placement=placement).run()
    finally:
        if socket_file is not None:
            socket_file.remove()
        if metrics_folder is not None:
            remove_multiprocess(metrics_folder)


def _log_banner(settings: ServeSettings, where: str, served: ServedModels | None, placement: Placement) -> None:
    assert settings.entry_script is not None
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    preload = ", init() once before forking (--preload)" if settings.preload else ""
    logger.info("scorehost %s serving %s", __version__, settings.entry_script)
    if served is not None:
        logger.info("model dir: %s; models: %s", model_dir, served.describe())
    else:
        logger.info("model dir: %s", model_dir or "AZUREML_MODEL_DIR not set (use --model-dir if init() needs it)")
    spare = f", spare threads: {settings.spare_threads}" if settings.spare_threads else ""
    logger.info("workers: %d, run() threads per worker: %d%s%s", settings.workers, settings.threads, spare, preload)
    for line in placement.lines:
        logger.info("%s", line)
    logger.info(
        "limits: %.1f s per request (queue + run()), bodies up to %s",
        settings.request_timeout,
        format_size(settings.max_body_size),
    )
    collecting = collection_settings(settings)
    if collecting is not None:
        logger.info("data collection: %s", describe_collection(collecting))
        if collecting.refused_headers:
            logger.warning(
                "--collect-header: %s never collected (credentials stay out of collected data)",
                ", ".join(collecting.refused_headers),
            )
    if settings.debug_errors:
        logger.warning(
            "--debug-errors is on: callers of a failed run() get what it raised, which may hold paths, secrets or "
            "parts of requests. For local development only; turn it off before anyone else can reach this server."
        )
    if settings.otlp_endpoint:
        logger.info("exporting traces to %s", describe_export(settings.otlp_endpoint, os.environ))
    # Not "listening" yet: init() has not run. The supervisor says that once a worker serves; what is bound now
    # answers GET /live meanwhile.
    logger.info("starting on %s  (GET /live answers while init() runs)", where)
