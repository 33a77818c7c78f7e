"""The Ray backend: each deployment generation is one Ray Serve application of `ScoringReplica`s, under the
route prefix `/<endpoint>/<deployment>/<generation>` of the cluster's Serve ingress.

The gateway reaches a generation at `http://<ingress>/<prefix>`, so keys, traffic split and rolling
updates stay the gateway's and the controller's, whatever runs the replicas. Ray is imported only when a
backend is made (`pip install 'scorehost[ray]'`): the control plane makes one on the first `--backend ray`
deployment (`backends.router`).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.deploy.backends import ray_rollout
from scorehost.deploy.backends.base import (
    DeploymentRecord,
    DeploymentStatus,
    Handle,
    InstanceState,
    InstanceStatus,
    RollPlan,
)
from scorehost.deploy.backends.ray_replicas import ReplicaBooks, replicas_of
from scorehost.deploy.backends.ray_status import Unplaced, state_name
from scorehost.deploy.collected import collection_serve_options
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeploymentFailed, DeploymentTimeout, InvalidSpec, ServiceUnavailable, UnknownResource
from scorehost.ray.auth import checks_tokens, open_cluster_refusal, prepare_driver
from scorehost.ray.config import HIGH_THROUGHPUT_ENVIRONMENT, ServeConfig
from scorehost.ray.models import manifest
from scorehost.ray.serve_app import DEPLOYMENT_NAME, application
from scorehost.ray.startup_error import StartupError, failure_of

__all__ = ["RayBackend", "RayGeneration", "deployment_options", "reachable", "room_problem"]


_STATES = {
    "NOT_STARTED": InstanceState.STARTING,
    "DEPLOYING": InstanceState.STARTING,
    "RUNNING": InstanceState.READY,
    "UNHEALTHY": InstanceState.RESTARTING,
    "DEPLOY_FAILED": InstanceState.FAILED,
    "DELETING": InstanceState.STOPPED,
}
_REPLICA_STATES = {
    "RUNNING": InstanceState.READY,
    "STARTING": InstanceState.STARTING,
    "UPDATING": InstanceState.STARTING,
    "RECOVERING": InstanceState.RESTARTING,
    "STOPPING": InstanceState.STOPPED,
    "PENDING_MIGRATION": InstanceState.RESTARTING,
}


@dataclass(frozen=True)
class RayGeneration:
    """A generation running as the Serve application `app_name` (the Ray backend's `Handle`)."""

    endpoint: str
    deployment: str
    generation: int
    ingress: str  # http://HOST:PORT of the Serve ingress the gateway reaches it through
    address: str | None = None  # the cluster's HOST:PORT, for a restarted control plane to connect to

    @property
    def app_name(self) -> str:
        return f"{self.endpoint}.{self.deployment}.{self.generation}"

    @property
    def route_prefix(self) -> str:
        return f"/{self.endpoint}/{self.deployment}/{self.generation}"

    def record(self) -> DeploymentRecord:
        data = {"app": self.app_name, "ingress": self.ingress, "address": self.address}
        return DeploymentRecord("ray", self.endpoint, self.deployment, self.generation, data)


def deployment_options(spec: DeploymentSpec) -> dict[str, Any]:
    """Serve's options for the spec's one deployment: the same rendering as `scorehost ray config`'s."""
    ray = spec.ray
    if ray is None:
        raise InvalidSpec(f"{spec.endpoint}/{spec.name} is not a Ray deployment (--backend ray)")
    config = ServeConfig(
        entry_script=str(spec.script),
        replicas=None if ray.autoscaling else spec.instances,
        min_replicas=ray.min_replicas or 1,
        max_replicas=ray.max_replicas or 1,
        target_ongoing_requests=ray.target_ongoing,
        upscale_delay_s=ray.upscale_delay_s,
        downscale_delay_s=ray.downscale_delay_s,
        max_ongoing_requests=ray.max_ongoing,
        max_queued_requests=ray.max_queued,
        num_cpus=ray.num_cpus,
        num_gpus=ray.num_gpus,
        health_check_period_s=ray.health_check_s,
        graceful_shutdown_timeout_s=ray.graceful_shutdown_s,
    )
    options = config.deployment_options()
    del options["name"]  # the application names it
    runtime_env: dict[str, Any] = {}
    if spec.environment:
        runtime_env["env_vars"] = dict(spec.environment)
    if spec.python_environment is not None:
        runtime_env["uv"] = python_packages(spec)
    if runtime_env:
        options["ray_actor_options"]["runtime_env"] = runtime_env
    return options


def room_problem(spec: DeploymentSpec, cluster: Mapping[str, float]) -> str | None:
    """Why the cluster, whose resources in all are `cluster` (Ray's `cluster_resources()`), could never hold the
    spec's replicas (its floor, when autoscaled), naming the fix; None when it could."""
    assert spec.ray is not None
    replicas = (spec.ray.min_replicas if spec.ray.autoscaling else spec.instances) or 1
    where = f"the cluster has no room for the replicas of {spec.endpoint}/{spec.name}"
    needed, total = replicas * spec.ray.num_cpus, cluster.get("CPU", 0.0)
    if needed > total:
        return (
            f"{where}: {replicas} x {spec.ray.num_cpus:g} CPU need {needed:g} CPUs, and the cluster has {total:g} in "
            "all. Ask for fewer CPUs per replica (--num-cpus) or fewer replicas, or add nodes"
        )
    needed, total = replicas * spec.ray.num_gpus, cluster.get("GPU", 0.0)
    if needed > total:
        fix = (
            "Add GPU nodes (`ray start` on a machine with NVIDIA GPUs and their driver: Ray counts the GPUs it sees), "
            "or deploy it without GPUs (--num-gpus 0)"
            if not total
            else "Ask for less of a GPU per replica (--num-gpus 0.5 shares one) or fewer replicas, or add GPU nodes"
        )
        asked = f"{replicas} x {spec.ray.num_gpus:g} GPU need {needed:g} GPUs"
        return f"{where}: {asked}, and the cluster has {total:g} in all. {fix}"
    return None


def python_packages(spec: DeploymentSpec) -> dict[str, Any]:
    """The deployment's Python environment as Ray's `uv` runtime_env: each node builds a virtual environment with
    these packages over the cluster's own (where Ray and scorehost are), so the replicas import the versions the
    environment pins. Ray cannot change a replica's Python: a different version is refused."""
    from scorehost.environments import EnvironmentSpec

    assert spec.python_environment is not None
    environment = EnvironmentSpec.from_json(dict(spec.python_environment))
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    if environment.python is not None and environment.python != ours:
        raise InvalidSpec(
            f"the environment of {spec.endpoint}/{spec.name} asks for Python {environment.python}, but Ray replicas "
            f"run the cluster's Python ({ours}); pin python={ours} in the environment, or deploy it locally"
        )
    packages: dict[str, Any] = {"packages": list(environment.requirements)}
    if environment.index_options:
        packages["uv_pip_install_options"] = list(environment.index_options)
    return packages


def reachable(address: str, timeout: float = 5.0) -> None:
    """Raise ServiceUnavailable naming the fix unless something answers at the cluster's HOST:PORT (ray.init would
    retry for a minute before saying less)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ServiceUnavailable(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}): start it there with `ray start "
            "--head`, or give the address its head printed (--ray-address, RAY_ADDRESS)"
        ) from None


class RayBackend:
    """Runs deployments on one Ray cluster, the one at `address` (connected to on first use), or the one this
    process is already connected to (`ray.init()` first). Registered models come from the registry in `home`.
    A cluster that checks no tokens is refused (`check`) unless the deployment says `insecure_cluster`.

    Replicas Ray has no room for are never left waiting silently: more CPUs or GPUs than the cluster has in all
    are refused by `check`; replicas waiting for CPUs that other deployments hold fail the generation after
    `pending_grace` seconds, saying so."""

    name = "ray"

    def __init__(
        self, address: str | None = None, *, home: Path | None = None, poll_s: float = 0.5, pending_grace: float = 60.0
    ) -> None:
        for name, value in HIGH_THROUGHPUT_ENVIRONMENT.items():
            # Serve's high-throughput mode, on by default: the driver's Serve reads it when first imported too.
            os.environ.setdefault(name, value)
        try:
            import ray
            from ray import serve
        except ImportError:
            raise InvalidSpec(
                "the Ray backend needs Ray Serve where the control plane runs: pip install 'scorehost[ray]'"
            ) from None
        self._serve = serve
        # Serve's client API is not thread-safe: building a deployment's config registers and unregisters a module
        # with cloudpickle, and a status() read at the same time (the route watcher's) made the second unregister
        # raise. Every call into it goes through this lock.
        self._serve_lock = threading.RLock()
        self._connected_here = not ray.is_initialized()
        if self._connected_here:
            if address is None:
                raise InvalidSpec("the Ray backend needs the cluster's address (HOST:PORT of its head)")
            reachable(address)
            # Whether the cluster checks tokens, and ours, before ray.init (which retries ~20 s before saying less).
            self.open_cluster = prepare_driver(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError) as error:
                raise ServiceUnavailable(f"cannot connect to the Ray cluster at {address}: {error}") from None
        else:
            self.open_cluster = not checks_tokens(ray.get_runtime_context().gcs_address)
        self._ray: Any = ray
        self.address = address
        self.home = home
        self.poll_s = poll_s
        # How long replicas may wait for CPUs that other deployments hold (Serve reports them after
        # RAY_SERVE_SLOW_STARTUP_WARNING_S, 30 s by default) before the generation fails saying so.
        self.pending_grace = pending_grace
        self._books = ReplicaBooks()  # each generation's replicas seen, for their restarts (ray_replicas.py)
        # Why generations could not start (the script's error), for logs(); notified as wait_ready() settles one.
        self._failures: dict[str, StartupError] = {}
        self._settled = threading.Condition()

    def check(self, spec: DeploymentSpec) -> None:
        if spec.ray is None:
            raise InvalidSpec(f"{spec.endpoint}/{spec.name} is not a Ray deployment (--backend ray)")
        if self.address is not None and spec.ray.address != self.address:
            raise InvalidSpec(
                f"this control plane runs deployments on the Ray cluster at {self.address}; one control plane uses "
                f"one cluster, so {spec.ray.address} needs a workspace of its own (--home)"
            )
        if self.open_cluster and not spec.ray.insecure_cluster:
            raise InvalidSpec(open_cluster_refusal(spec.ray.address))
        if spec.models and self.home is None:
            raise InvalidSpec("this Ray backend has no workspace to take registered models from")
        if spec.python_environment is not None:
            python_packages(spec)  # refuses a Python version the replicas cannot have, before anything is stored
        problem = room_problem(spec, self._ray.cluster_resources())
        if problem is not None:
            raise InvalidSpec(problem)

    def start(self, spec: DeploymentSpec, generation: int, instances: int | None = None) -> RayGeneration:
        """Begin starting `spec` as `generation`, with `instances` replicas for now (an update rolling within the
        room, `resize` grows it later; None: as the spec says)."""
        self.check(spec)
        assert spec.ray is not None  # check() refused it otherwise
        ingress = spec.ray.ingress or self._ingress()
        handle = RayGeneration(spec.endpoint, spec.name, generation, ingress.rstrip("/"), spec.ray.address)
        self._deploy(handle, spec, instances)
        return handle

    def _deploy(self, handle: RayGeneration, spec: DeploymentSpec, instances: int | None) -> None:
        """Run `handle`'s Serve application with `instances` replicas. Its Serve version is its name, so running it
        again with another number starts or stops only the difference (`ray_rollout`)."""
        assert spec.ray is not None
        generation = handle.generation
        # Never what run() raised to callers, whatever the nodes' environment says (SCOREHOST_DEBUG_ERRORS).
        options = {"entry_script": str(spec.script), **spec.serve_options, "debug_errors": False}
        if self.home is not None:  # collected rows land in this workspace: one machine, or a folder the nodes share
            options.update(collection_serve_options(spec, self.home, generation))
        models = None
        if spec.models:
            assert self.home is not None
            models = manifest(self.home, spec.models, spec.ray.model_store)
        with self._serve_lock:
            sized = ray_rollout.sized_options(deployment_options(spec), instances)
            app = application(options, sized, models, version=handle.app_name)
            # Not waiting: wait_ready() does, and reports a script that cannot start with Serve's message.
            self._serve._run(app, _blocking=False, name=handle.app_name, route_prefix=handle.route_prefix)

    # --- updates within the room there is (`ray_rollout`; the optional `Resizable` of backends.base) ------------

    def plan_update(self, spec: DeploymentSpec, old: Handle, old_spec: DeploymentSpec) -> RollPlan | None:
        return ray_rollout.plan_update(self, spec, self._own(old))

    def resize(self, handle: Handle, spec: DeploymentSpec, instances: int | None) -> None:
        generation = self._own(handle)
        wanted = ray_rollout.sizing(ray_rollout.sized_options(deployment_options(spec), instances))
        # Not when gone or being deleted (running it again would bring it back), nor when already so: a generation
        # started by an older scorehost has another Serve version, and running it again would restart its replicas.
        if ray_rollout.deployed_sizing(self, generation) not in (None, wanted):
            self._deploy(generation, spec, instances)

    def wait_resized(self, handle: Handle, instances: int, timeout: float, cancelled: Callable[[], bool]) -> None:
        ray_rollout.wait_resized(self, self._own(handle), instances, timeout, cancelled)

    def wait_ready(self, handle: Handle, timeout: float) -> None:
        generation = self._own(handle)
        deadline = time.monotonic() + timeout
        unplaced = Unplaced(self.pending_grace)
        while True:
            status = self._application(generation)
            state = state_name(status.status) if status is not None else "NOT_STARTED"
            if state == "RUNNING":
                with self._settled:
                    self._settled.notify_all()  # logs() following it: nothing more to wait for
                return
            message = self._message(status) if status is not None else ""
            if state == "DEPLOY_FAILED":
                raise self._failed_start(generation, message)
            if unplaced.past_grace(message):
                # The cluster can hold them (check() saw to it), but other deployments hold the CPUs they need.
                free = self._ray.available_resources().get("CPU", 0.0)
                raise DeploymentFailed(
                    f"{generation.app_name} cannot start on Ray: the cluster has no free room for its replicas "
                    f"({free:g} CPUs free). Stop or shrink other deployments, ask for fewer CPUs per replica "
                    "(--num-cpus), or add nodes",
                    cause=message,
                )
            if time.monotonic() > deadline:
                raise DeploymentTimeout(f"{generation.app_name} was not ready on Ray within {timeout:g} s ({state})")
            time.sleep(self.poll_s)

    def stop(self, handle: Handle, drain_seconds: float) -> None:
        """Have Serve delete the application and return once it takes no new requests. Its replicas then drain
        on the cluster by Serve's rules (`graceful_shutdown_s`, and in HAProxy mode at least 30 s of open ports
        for load balancers to notice), with nobody here waiting: a control plane stopping many Ray deployments
        would otherwise take half a minute for each."""
        generation = self._own(handle)
        if self._live(self._application(generation)):
            with self._serve_lock:
                self._serve.delete(generation.app_name, _blocking=False)
        deadline = time.monotonic() + max(drain_seconds, 10.0)
        while self._live(self._application(generation)) and time.monotonic() < deadline:
            time.sleep(self.poll_s / 5)

    def status(self, handle: Handle) -> DeploymentStatus:
        """One instance per replica, named by Serve's replica id (`blue-2-u9rns7w0`) for its whole life, with the
        restarts of the replicas it replaced (`ray_replicas`). Read from Serve's details: one call, as serve.status()
        makes it."""
        generation = self._own(handle)
        app = self._details(generation)
        if app is None:
            self._books.forget(generation.app_name)
            return DeploymentStatus(*self._key(generation), InstanceState.STOPPED, ())
        state = _STATES.get(state_name(app.get("status")), InstanceState.STARTING)
        deployment = (app.get("deployments") or {}).get(DEPLOYMENT_NAME) or {}
        replicas = replicas_of(deployment)
        counted = self._books.look(generation.app_name, replicas, int(deployment.get("target_num_replicas") or 0))
        error = None
        if state is InstanceState.FAILED:  # the replicas' own error (the script's), as a local instance keeps it
            failure = failure_of(str(deployment.get("message") or app.get("message") or ""))
            error = "\n".join((f"cannot start on Ray: {failure.headline}", *failure.traceback.splitlines()))
        instances = []
        for replica in replicas:
            instance_state = _REPLICA_STATES.get(replica.state, InstanceState.STARTING)
            url = self._url(generation) if instance_state is InstanceState.READY else None
            name = f"{generation.deployment}-{generation.generation}-{replica.id}"
            count = counted[replica.id]
            instances.append(
                InstanceStatus(name, instance_state, url, count.restarts, count.last_error or error, replica.started_at)
            )
        if not instances:
            instances.append(InstanceStatus(f"{generation.deployment}-{generation.generation}", state, None, 0, error))
        return DeploymentStatus(*self._key(generation), state, tuple(instances))

    def targets(self, handle: Handle) -> list[str]:
        generation = self._own(handle)
        app = self._application(generation)
        running = app is not None and state_name(app.status) in ("RUNNING", "UNHEALTHY")
        # A generation resized in place is DEPLOYING meanwhile, and its running replicas go on serving.
        running = running or ray_rollout.resizing(app)
        return [self._url(generation)] if running else []

    def logs(self, handle: Handle, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        """Where the replicas' logs are; for a generation that could not start, the replicas' error too (with
        `follow`, once its start has settled): what a local deployment's log shows of a script that cannot start."""
        generation = self._own(handle)
        yield (
            f"{generation.app_name} runs on Ray: its replicas' logs are on their nodes, in Ray's session folder "
            f"(logs/serve/replica_{generation.app_name}_{DEPLOYMENT_NAME}_*.log)"
        )
        failure = self._failures.get(generation.app_name)
        while follow and failure is None:
            app = self._application(generation)
            state = state_name(app.status) if app is not None else "DELETED"
            if state == "DEPLOY_FAILED":
                failure = failure_of(self._message(app))
            elif state not in ("NOT_STARTED", "DEPLOYING"):
                break
            with self._settled:  # woken when wait_ready() settles a generation; Serve asked again at most every 10 s
                failure = self._failures.get(generation.app_name, failure)
                if failure is None:
                    self._settled.wait(10)
                    failure = self._failures.get(generation.app_name)
        if failure is not None:
            yield from [f"its replicas cannot start: {failure.headline}", *failure.traceback.splitlines()][-lines:]

    def adopt(self, record: DeploymentRecord) -> RayGeneration | None:
        if record.backend != self.name:
            return None
        ingress = str(record.data.get("ingress") or self._ingress())
        address = record.data.get("address")
        generation = RayGeneration(
            record.endpoint, record.deployment, record.generation, ingress, str(address) if address else None
        )
        return generation if self._live(self._application(generation)) else None

    def close(self) -> None:
        if self._connected_here:  # the applications keep running on the cluster
            self._ray.shutdown()

    # --- helpers -----------------------------------------------------------------------------------

    def _failed_start(self, generation: RayGeneration, message: str) -> DeploymentFailed:
        """The replicas' own error, as the local backend reports a script that cannot start: what is wrong in the
        message (`init() in score.py raised ...`), the script's traceback as the log's last lines; logs() shows
        them from now on."""
        failure = failure_of(message)
        with self._settled:
            self._failures[generation.app_name] = failure
            while len(self._failures) > 256:  # the most recent ones: `deployments logs` of a failed generation
                del self._failures[next(iter(self._failures))]
            self._settled.notify_all()
        where = f"{generation.endpoint}/{generation.deployment} generation {generation.generation}"
        return DeploymentFailed(
            f"{where} cannot start on Ray: {failure.headline}",
            cause=message,
            log_tail=tuple(failure.traceback.splitlines()),
        )

    def _details(self, generation: RayGeneration) -> dict[str, Any] | None:
        """The application's entry in Serve's details, which `serve.status()` is made from, with each replica's id
        (None: no such application, or Serve not started)."""
        from ray.serve.context import _get_global_client

        with self._serve_lock:
            client = _get_global_client(raise_if_no_controller_running=False)
            details = client.get_serve_details() if client is not None else {}
        found = (details.get("applications") or {}).get(generation.app_name)
        return found if isinstance(found, dict) else None

    def _own(self, handle: Handle) -> RayGeneration:
        if not isinstance(handle, RayGeneration):
            raise UnknownResource(f"{handle.endpoint}/{handle.deployment} is not run by the Ray backend")
        return handle

    def _application(self, generation: RayGeneration) -> Any:
        with self._serve_lock:
            return self._serve.status().applications.get(generation.app_name)

    @staticmethod
    def _live(app: Any) -> bool:
        """Whether a Serve application exists and is not being deleted."""
        return app is not None and state_name(app.status) != "DELETING"

    def _url(self, generation: RayGeneration) -> str:
        return generation.ingress + generation.route_prefix

    def _ingress(self) -> str:
        """Where Serve's ingress listens, starting Serve (on the head's address, port 8000) if it is not running."""
        from ray.serve.context import _get_global_client

        head = (self.address or "127.0.0.1:0").rpartition(":")[0]
        with self._serve_lock:
            client = _get_global_client(raise_if_no_controller_running=False)
            if client is None:
                self._serve.start(http_options={"host": head.strip("[]"), "port": 8000})
                client = _get_global_client()
        assert client is not None  # raised otherwise
        host, port = client.http_config.host, client.http_config.port
        if host in ("", "0.0.0.0", "::"):  # every interface: the head's address reaches it
            host = head
        return f"http://{host}:{port}"

    @staticmethod
    def _key(generation: RayGeneration) -> tuple[str, str, int]:
        return generation.endpoint, generation.deployment, generation.generation

    @staticmethod
    def _message(app: Any) -> str:
        deployment = app.deployments.get(DEPLOYMENT_NAME)
        return str(getattr(deployment, "message", "") or getattr(app, "message", ""))
