"""`deployments create/update` waiting for their generation: its instances as they start, its log (the script's
`init()` output) as it is written, then how to call it; or at once why it failed, or that another update
superseded it.

On a terminal the progress is a live status line on stderr with the log lines printed above it; elsewhere
(CI logs, pipes) plain lines on stderr, the status only when it changes; with --json nothing at all, so that
stdout holds the JSON alone and stderr only errors.
"""

from __future__ import annotations

import json
import queue
import shlex
import threading
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

    from scorehost.client import Client, ControlPlaneAddress

__all__ = ["Progress", "next_steps", "wait_ready"]

_POLL = 0.25  # seconds between status reads: a superseded or failed update is told within this
_SETTLE = 0.3  # once ready: time for the last init() lines to arrive before the summary
_ACCESS_LOG = "scorehost.access"  # the logger of serve's access lines, in text and JSON logs alike


class Progress:
    """Where a wait's progress goes: `live` (a status line on a terminal), `plain` (lines) or `quiet` (nothing)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._shown = ""
        self._console: Console | None = None
        self._status: Status | None = None

    @classmethod
    def for_output(cls, as_json: bool) -> Progress:
        """Quiet with --json, live on a terminal's stderr, plain elsewhere."""
        if as_json:
            return cls("quiet")
        from rich.console import Console

        return cls("live" if Console(stderr=True).is_terminal else "plain")

    def status(self, text: str) -> None:
        """Show `text` as the status now (a line of its own when plain); an empty text changes nothing."""
        if not text or text == self._shown or self.mode == "quiet":
            return
        self._shown = text
        if self.mode == "plain":
            click.echo(text, err=True)
            return
        from rich.console import Console
        from rich.markup import escape

        if self._status is None:
            self._console = Console(stderr=True)
            self._status = self._console.status(escape(text))
            self._status.start()
        else:
            self._status.update(escape(text))

    def log(self, line: str) -> None:
        """One line of the deployment's log, indented under the status (not its access log: readiness probes)."""
        if _ACCESS_LOG in line:
            return
        if self.mode == "plain":
            click.echo(f"  {line}", err=True)
        elif self.mode == "live":
            from rich.console import Console
            from rich.text import Text

            self._console = self._console or Console(stderr=True)
            self._console.print(Text(f"  {line}", style="dim"), soft_wrap=True)  # above the status line

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class _LogFollower:
    """Follows one generation's log in a thread (the control plane streams it), for the waiting loop to print."""

    def __init__(self, address: ControlPlaneAddress, endpoint: str, name: str, generation: int) -> None:
        from scorehost.client import Client

        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._client = Client(address=address, timeout=10.0)
        self._where = (endpoint, name, generation)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scorehost-log-follower")
        self._thread.start()

    def _run(self) -> None:
        endpoint, name, generation = self._where
        seen = 0  # lines put out already: a stream that broke off is read again from the start, these skipped
        while not self._stopping.is_set():
            count = 0
            try:
                for line in self._client.follow_logs(endpoint, name, lines=100_000, generation=generation):
                    count += 1
                    if count > seen:
                        seen = count
                        self.lines.put(line)
                if count:
                    return  # the stream ended: the generation stopped (failed or superseded)
            except Exception:  # noqa: BLE001 - not started yet (404), or closed by close(): try again, or stop
                pass
            self._stopping.wait(0.3)

    def finish(self, timeout: float) -> list[str]:
        """What is left of a stream that ends (the generation stopped), once it has ended or `timeout` passed."""
        self._thread.join(timeout)
        return self.drain()

    def drain(self) -> list[str]:
        found = []
        while True:
            try:
                found.append(self.lines.get_nowait())
            except queue.Empty:
                return found

    def close(self) -> None:
        self._stopping.set()
        self._client.close()  # ends a stream blocked on a read


def _instances_of(status: dict[str, Any], generation: int) -> list[dict[str, Any]]:
    """The instances of `generation`: being started, or serving (or shown, while none serves)."""
    if status.get("starting_generation") == generation:
        return list(status.get("starting_instances") or status.get("instances") or [])
    if generation in (status.get("serving_generation"), status.get("generation")):
        return list(status.get("instances") or [])
    return []


def progress_text(deployment: dict[str, Any], generation: int) -> str | None:
    """`mnist/blue generation 2: 1 of 2 instances ready`, as far as it has come; None before any instance shows
    (its environment being built, say) or after they are gone (it failed: the error says why)."""
    where = f"{deployment['endpoint']}/{deployment['name']} generation {generation}"
    instances = _instances_of(deployment["status"], generation)
    total = len(instances)
    if not instances:
        return None
    states = [str(instance.get("state")) for instance in instances]
    text = f"{where}: {states.count('ready')} of {total} instance{'s' if total != 1 else ''} ready"
    if "restarting" in states:
        text += f", {states.count('restarting')} restarting"
    return text


def wait_ready(client: Client, endpoint: str, name: str, generation: int, timeout: float, progress: Progress) -> Any:
    """The deployment once `generation` serves; ClickException at once when it fails or a later update supersedes
    it, and after `timeout` seconds."""
    logs_command = f"`scorehost deployments logs {endpoint} {name} --generation {generation}`"
    follower = None if progress.mode == "quiet" else _LogFollower(client.address, endpoint, name, generation)
    progress.status(f"{endpoint}/{name} generation {generation}: starting")
    deadline = time.monotonic() + timeout
    try:
        while True:
            deployment = client.get_deployment(endpoint, name)
            status = deployment["status"]
            for line in follower.drain() if follower is not None else []:
                progress.log(line)
            if deployment["generation"] > generation:  # another update came after ours: we would wait forever
                raise click.ClickException(
                    f"{endpoint}/{name} generation {generation} was superseded by generation "
                    f"{deployment['generation']} (started by another update); "
                    f"`scorehost deployments show {endpoint} {name}` follows it"
                )
            progress.status(progress_text(deployment, generation) or "")
            serving = status.get("serving_generation", status.get("generation", deployment["generation"]))
            if status.get("state") == "ready" and serving == generation:
                if follower is not None:  # its log goes on: give the last init() lines a moment to arrive
                    time.sleep(_SETTLE)
                    for line in follower.drain():
                        progress.log(line)
                return deployment
            if status.get("error") and (status.get("state") == "failed" or serving != generation):
                for line in follower.finish(_SETTLE * 3) if follower is not None else []:  # the traceback, first
                    progress.log(line)
                reason = _reason(str(status["error"]), f"{endpoint}/{name} generation {generation}")
                raise click.ClickException(f"{reason}\nthe full log: {logs_command}")
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{endpoint}/{name} generation {generation} is not ready after {timeout:.0f} s (state "
                    f"{status.get('state')}); it keeps starting in the background. {logs_command} shows why"
                )
            time.sleep(_POLL)
    finally:
        progress.close()
        if follower is not None:
            follower.close()


def _reason(error: str, where: str) -> str:
    """The first line of a failure (the log lines after it are one command away), naming the generation once."""
    first = error.strip().splitlines()[0] if error.strip() else "(no reason given)"
    return first if first.startswith(where) else f"{where} failed: {first}"


def next_steps(client: Client, endpoint: str, name: str) -> list[str]:
    """The scoring URI and a curl line that calls this deployment (with its sample request, when it has one)."""
    found = client.get_endpoint(endpoint)
    uri = str(found["scoring_uri"])
    share = int(found.get("traffic", {}).get(name, 0))
    command = ["curl", uri, "-H", "Content-Type: application/json"]
    key = None
    if found.get("auth") == "key":
        key = client.keys(endpoint)["primary"]
        command += ["-H", "Authorization: Bearer $KEY"]
    if share < 100:  # without it, the traffic split decides which deployment answers
        command += ["-H", f"azureml-model-deployment: {name}"]
    sample = _sample(client, endpoint, name, key)
    quoted = " ".join(
        f'"{part}"' if "$KEY" in part else shlex.quote(part) for part in [*command, "-d", sample or '{"data": ...}']
    )
    lines = [f"scoring URI: {uri}" + (f"  ({name} takes {share}% of its traffic)" if share < 100 else "")]
    lines.append(f"try it:      {quoted}")
    if key is not None:
        lines.append(f"             (KEY: `scorehost endpoints keys {endpoint}`)")
    return lines


def _sample(client: Client, endpoint: str, name: str, key: str | None) -> str | None:
    """The deployment's sample request from its swagger document (typed run() scripts have one), short enough to
    show; None otherwise."""
    import httpx

    headers = {"azureml-model-deployment": name, **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        answer = httpx.get(f"{client.address.gateway}/endpoints/{endpoint}/swagger.json", headers=headers, timeout=3.0)
        document = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    schemas = document.get("definitions") or document.get("components", {}).get("schemas") or {}
    example = (schemas.get("ServiceInput") or {}).get("example") if isinstance(schemas, dict) else None
    if not isinstance(example, dict) or not example:
        return None
    text = json.dumps(example, separators=(",", ":"))
    return text if len(text) <= 300 else None
