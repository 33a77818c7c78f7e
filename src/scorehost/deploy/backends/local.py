"""The local backend: each deployment generation is one supervised `scorehost serve` process on a private
Unix socket (`runtime_dir()`: `$XDG_RUNTIME_DIR/scorehost` or `/tmp/scorehost-<uid>`, mode 0700).

`--workers` is the spec's instance count (serve restarts its own dead workers); a monitor thread per
generation restarts the whole process when it dies, with exponential backoff, and records why. The
generation's folder, `<home>/deployments/<endpoint>/<deployment>/<generation>/`, holds its rotated
`serve.log`, `launch.json` (how to start it again) and `process.json` (the running pid, socket URL and
token): enough for a restarted control plane to `adopt` it, or to start it again after a reboot; and
`workers.json`, serve's report of each worker (telemetry/worker_report.py): each is one instance in `status`.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices

from scorehost.config import ServeSettings, WorkspaceSettings
from scorehost.deploy.backends.base import DeploymentRecord, DeploymentStatus, Handle
from scorehost.deploy.backends.local_generation import (
    WORKER_REPORT,
    Backoff,
    Generation,
    LogSettings,
    read_json,
    write_json_private,
)
from scorehost.deploy.backends.local_process import (
    TOKEN_VARIABLE,
    AdoptedProcess,
    Launch,
    is_ours,
    kill_leftovers,
    probe_ready,
    runtime_dir,
)
from scorehost.deploy.collected import collection_serve_options
from scorehost.deploy.spec import DeploymentSpec, check_serve_options, serve_settings_of
from scorehost.errors import DeploymentFailed, InvalidSpec, ResourceExists, UnknownResource
from scorehost.telemetry.worker_report import REPORT_VARIABLE

__all__ = ["Backoff", "LocalBackend", "LogSettings", "serve_environment"]


def serve_environment(options: Mapping[str, Any], *, owned: bool = False) -> dict[str, str]:
    """A spec's serve_options as the variables `scorehost serve` reads them from (SCOREHOST_TIMEOUT=5, ...).

    Variables, not flags: a key never reaches the command line, so none can become a flag of its own, and the
    flags the backend passes (--uds, --workers, --model, --home) win over any variable by ServeSettings' order.
    Each key is checked again (InvalidSpec: the generation fails, saying why) for specs stored by older versions;
    `owned` options are the backend's own (the control plane sets them), not the spec's.
    """
    settings = serve_settings_of(options, owned=owned)
    rendered: dict[str, str] = {}
    for name in check_serve_options(options, owned=owned):
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            text = ",".join(value)  # serve's list settings are comma-separated
        elif isinstance(value, list | tuple | dict):
            text = json.dumps(value)  # pydantic-settings reads complex fields as JSON
        else:
            text = str(value)
        rendered[_variable(name)] = text
    return rendered


def _variable(field: str) -> str:
    """The environment variable ServeSettings reads `field` from: its first alias, else SCOREHOST_<FIELD>."""
    alias = ServeSettings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return alias if isinstance(alias, str) else f"SCOREHOST_{field.upper()}"


class LocalBackend:
    """Runs deployments as `scorehost serve` processes on this machine (the `Backend` interface)."""

    name = "local"

    def __init__(
        self,
        home: Path,
        *,
        backoff: Backoff | None = None,
        logs: LogSettings | None = None,
        adopt_timeout: float = 5.0,
        registry_url: str | None = None,
    ) -> None:
        self.home = home.expanduser().resolve()
        # The control plane's own SCOREHOST_REGISTRY_URL, handed to each serve process at each start (never saved);
        # None: the default SQLite file in `home`, which serve's --home finds.
        self.registry_url = registry_url or WorkspaceSettings(home=self.home).registry_url
        self.backoff = backoff or Backoff()
        self.log_settings = logs or LogSettings()
        self.adopt_timeout = adopt_timeout
        self._generations: dict[tuple[str, str, int], Generation] = {}
        self._lock = threading.Lock()

    def _folder(self, endpoint: str, deployment: str, generation: int) -> Path:
        return self.home / "deployments" / endpoint / deployment / str(generation)

    def check(self, spec: DeploymentSpec) -> None:
        if spec.backend != self.name:
            raise InvalidSpec(f"{spec.endpoint}/{spec.name} is for the {spec.backend} backend, not the local one")
        if spec.python_environment is not None:
            # Refused now (400), not when the generation starts: a specification uv cannot take, or a Python
            # that is not installed here.
            from scorehost.environments import EnvironmentSpec, choose_python

            environment = EnvironmentSpec.from_json(dict(spec.python_environment))
            choose_python(environment.python, nearest=False)

    def start(self, spec: DeploymentSpec, generation: int) -> Generation:
        key = (spec.endpoint, spec.name, generation)
        options = serve_environment(spec.serve_options)
        options.update(serve_environment(collection_serve_options(spec, self.home, generation), owned=True))
        token = secrets.token_hex(16)
        # A Unix socket, not a loopback port: cheaper per request through the gateway (bench/gateway.py), and
        # private (mode 0600 in a 0700 folder), so no other user of the machine can bypass the endpoint's keys.
        try:
            socket_path = runtime_dir() / f"{token[:24]}.sock"
        except OSError as error:
            raise DeploymentFailed(f"cannot make a private folder for the deployment's socket: {error}") from None
        python, isolation = self._python(spec)
        command = [python, "-m", "scorehost", "serve", str(spec.script), "--uds", str(socket_path)]
        command += ["--workers", str(spec.instances), "--home", str(self.home)]
        for ref in spec.models:
            command += ["--model", ref]
        report = self._folder(*key) / WORKER_REPORT  # each worker's state: one instance each in status()
        variables = {**spec.environment, **options, **isolation, TOKEN_VARIABLE: token, REPORT_VARIABLE: str(report)}
        launch = Launch(command, variables, str(spec.code_dir))
        with self._lock:
            running = self._generations.get(key)
            if running is not None and not running.finished:
                raise ResourceExists(f"{spec.endpoint}/{spec.name} generation {generation} is running already")
            folder = self._folder(*key)
            folder.mkdir(parents=True, exist_ok=True)
            write_json_private(
                folder / "launch.json",
                {"command": launch.command, "environment": launch.environment, "cwd": launch.cwd},
            )
            handle = Generation(
                *key,
                folder,
                token,
                launch,
                self.backoff,
                self.log_settings,
                f"unix:{socket_path}",
                registry_url=self.registry_url,
            )
            self._generations[key] = handle
        handle.begin()
        return handle

    def _python(self, spec: DeploymentSpec) -> tuple[str, dict[str, str]]:
        """The interpreter that runs the deployment (its environment's, built now unless cached; else ours), and
        the variables that keep anything else off its import path."""
        if spec.python_environment is None:
            return sys.executable, {}
        from scorehost.environments import EnvironmentSpec, ensure_environment
        from scorehost.errors import EnvironmentProblem

        try:
            built = ensure_environment(EnvironmentSpec.from_json(dict(spec.python_environment)), self.home)
        except EnvironmentProblem as error:
            raise DeploymentFailed(f"its Python environment cannot be built: {error.message}") from None
        # Whatever PYTHONPATH or user site the control plane was started with must not shadow the environment's
        # libraries: the script sees the versions its environment declares, and nothing else.
        isolation = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1", "VIRTUAL_ENV": str(built.python.parent.parent)}
        return str(built.python), isolation

    def _own(self, handle: Handle) -> Generation:
        if not isinstance(handle, Generation) or self._generations.get(handle.key) is not handle:
            raise UnknownResource(
                f"{handle.endpoint}/{handle.deployment} generation {handle.generation} is not run by this backend"
            )
        return handle

    def wait_ready(self, handle: Handle, timeout: float) -> None:
        self._own(handle).wait_ready(timeout)

    def stop(self, handle: Handle, drain_seconds: float) -> None:
        generation = self._own(handle)
        generation.stop(drain_seconds)  # kept: its status and logs stay readable

    def status(self, handle: Handle) -> DeploymentStatus:
        return self._own(handle).status()

    def targets(self, handle: Handle) -> list[str]:
        return self._own(handle).targets()

    def logs(self, handle: Handle, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        return self._own(handle).logs(follow=follow, lines=lines)

    def adopt(self, record: DeploymentRecord) -> Generation | None:
        if record.backend != self.name:
            return None
        folder = self._folder(record.endpoint, record.deployment, record.generation)
        token = str(record.data.get("token", ""))
        state = read_json(folder / "process.json")
        launch = read_json(folder / "launch.json")
        if not token or state.get("token") != token or not launch or not state.get("pid"):
            return None  # not ours, or it was not running (failed, stopped) when its last supervisor left
        pid, url = int(state["pid"]), str(state.get("url") or "")
        if not url.startswith("unix:"):  # started by a scorehost that served deployments on ports: start anew
            kill_leftovers(pid, token)
            return None
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is None or not is_ours(pid, token):  # gone (a zombie has no command line), or a reused pid
            if pidfd is not None:
                os.close(pidfd)
            # Its workers outlive a supervisor killed with SIGKILL and hold its port; the token spares strangers.
            kill_leftovers(pid, token)
            return None
        process = AdoptedProcess(pid, pidfd)
        deadline = time.monotonic() + self.adopt_timeout
        while not probe_ready(url):
            if time.monotonic() > deadline or process.wait(0.1) is not None:
                # Still starting or stuck: we cannot tell which, so restart it cleanly rather than wait blind.
                # Not ready means no request to drain: no SIGTERM first.
                kill_leftovers(pid, token)
                process.release()
                return None
        key = (record.endpoint, record.deployment, record.generation)
        saved = Launch(list(launch["command"]), dict(launch["environment"]), str(launch["cwd"]))
        handle = Generation(
            *key, folder, token, saved, self.backoff, self.log_settings, url, registry_url=self.registry_url
        )
        with self._lock:
            if key in self._generations and not self._generations[key].finished:
                process.release()
                raise ResourceExists(
                    f"{record.endpoint}/{record.deployment} generation {record.generation} is supervised already"
                )
            self._generations[key] = handle
        handle.begin(adopted=process, state=state)
        return handle

    def close(self) -> None:
        with self._lock:
            generations = list(self._generations.values())
            self._generations.clear()
        for generation in generations:
            generation.detach()
