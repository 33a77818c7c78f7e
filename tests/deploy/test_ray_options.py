"""What the Ray backend asks Serve for, from a deployment's Ray options (no cluster: the rendering alone), the
up-front check of the cluster's room, and how `deployments show` tells the GPUs per replica."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from scorehost.cli.deployment_show import show_deployment_text
from scorehost.cli.placement import placement_options, ray_options
from scorehost.deploy.backends.ray_serve import deployment_options, room_problem
from scorehost.deploy.spec import DeploymentSpec, RayOptions
from scorehost.errors import InvalidSpec


def _spec(tmp_path: Path, instances: int = 1, **ray: object) -> DeploymentSpec:
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    options = RayOptions("head:6379", **ray)  # type: ignore[arg-type]
    return DeploymentSpec(
        "mnist",
        "blue",
        Path("score.py"),
        tmp_path,
        instances=instances,
        environment={"A": "1"},
        backend="ray",
        ray=options,
    )


def test_a_fixed_number_of_replicas(tmp_path: Path) -> None:
    options = deployment_options(_spec(tmp_path, instances=3, num_cpus=0.5, max_queued=-1, graceful_shutdown_s=5))
    assert options == {
        "num_replicas": 3,
        "max_ongoing_requests": 8,
        "max_queued_requests": -1,
        "health_check_period_s": 10.0,
        "graceful_shutdown_timeout_s": 5,
        "ray_actor_options": {"num_cpus": 0.5, "runtime_env": {"env_vars": {"A": "1"}}},
    }


def test_autoscaling_on_ongoing_requests(tmp_path: Path) -> None:
    options = deployment_options(_spec(tmp_path, instances=3, min_replicas=1, max_replicas=8, target_ongoing=4))
    assert "num_replicas" not in options  # the autoscaler decides; --instances is ignored
    assert options["autoscaling_config"] == {
        **{"min_replicas": 1, "max_replicas": 8, "target_ongoing_requests": 4},
        # scorehost's delays (Serve's own: 30 s, 600 s), and replicas reporting every 2 s, averaged over 10 s
        **{"upscale_delay_s": 10.0, "downscale_delay_s": 300.0, "metrics_interval_s": 2.0, "look_back_period_s": 10.0},
    }
    quick = _spec(tmp_path, min_replicas=1, max_replicas=2, upscale_delay_s=2, downscale_delay_s=0)
    assert deployment_options(quick)["autoscaling_config"]["upscale_delay_s"] == 2
    assert deployment_options(quick)["autoscaling_config"]["downscale_delay_s"] == 0


def test_gpus_per_replica_reach_ray_actor_options(tmp_path: Path) -> None:
    shared = deployment_options(_spec(tmp_path, instances=2, num_gpus=0.5))
    assert shared["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.5, "runtime_env": {"env_vars": {"A": "1"}}}
    assert deployment_options(_spec(tmp_path, num_gpus=2))["ray_actor_options"]["num_gpus"] == 2
    assert "num_gpus" not in deployment_options(_spec(tmp_path))["ray_actor_options"]  # CPU only: Ray's default


def test_a_cluster_without_room_for_the_gpus_is_refused_up_front(tmp_path: Path) -> None:
    cpus_only = {"CPU": 16.0, "memory": 1e10}
    assert room_problem(_spec(tmp_path, instances=2), cpus_only) is None
    problem = room_problem(_spec(tmp_path, instances=2, num_gpus=1), cpus_only)
    assert problem == (
        "the cluster has no room for the replicas of mnist/blue: 2 x 1 GPU need 2 GPUs, and the cluster has 0 in all. "
        "Add GPU nodes (`ray start` on a machine with NVIDIA GPUs and their driver: Ray counts the GPUs it sees), or "
        "deploy it without GPUs (--num-gpus 0)"
    )
    one_gpu = {"CPU": 16.0, "GPU": 1.0}
    assert room_problem(_spec(tmp_path, instances=2, num_gpus=0.5), one_gpu) is None  # two replicas share it
    problem = room_problem(_spec(tmp_path, instances=3, num_gpus=0.5), one_gpu)
    assert problem is not None
    assert "3 x 0.5 GPU need 1.5 GPUs, and the cluster has 1 in all. Ask for less of a GPU per replica" in problem
    # autoscaled: the floor must fit; CPUs are checked first, with their own fix
    assert room_problem(_spec(tmp_path, min_replicas=1, max_replicas=8, num_gpus=1), one_gpu) is None
    problem = room_problem(_spec(tmp_path, instances=4, num_cpus=8, num_gpus=1), one_gpu)
    assert problem is not None
    assert "4 x 8 CPU need 32 CPUs" in problem


def test_deployments_show_names_the_gpus_per_replica(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deployment = {**_spec(tmp_path, num_gpus=0.5).to_json(), "generation": 1, "status": {"state": "ready"}}
    show_deployment_text(deployment)
    assert re.search(r"^  gpus +0\.5 per replica  \(shares one GPU\)$", capsys.readouterr().out, re.MULTILINE)
    show_deployment_text({**_spec(tmp_path).to_json(), "generation": 1, "status": {"state": "ready"}})
    assert "gpus" not in capsys.readouterr().out


@click.command()
@placement_options
def _placed(backend: str | None, **flags: Any) -> None:
    click.echo(json.dumps(ray_options(backend, flags, creating=True)))


def test_the_num_gpus_flag_of_deployments_create() -> None:
    runner = CliRunner()
    done = runner.invoke(_placed, ["--backend", "ray", "--ray-address", "h:1", "--num-gpus", "0.5"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"address": "h:1", "num_gpus": 0.5}
    shown = " ".join(runner.invoke(_placed, ["--help"]).output.split())
    assert "--num-gpus FLOAT RANGE Ray: GPUs Ray reserves per replica; fractions share one GPU, e.g. 0.5" in shown
    done = runner.invoke(_placed, ["--backend", "local", "--num-gpus", "1"])
    assert done.exit_code == 2
    assert "--num-gpus is a Ray option: it needs --backend ray" in done.output
    assert runner.invoke(_placed, ["--backend", "ray", "--ray-address", "h:1", "--num-gpus", "-1"]).exit_code == 2


def test_the_insecure_cluster_flag_is_given_only_when_said() -> None:
    """Absent, it is not sent: an update keeps what the deployment had."""
    runner = CliRunner()
    done = runner.invoke(_placed, ["--backend", "ray", "--ray-address", "h:1", "--insecure-cluster"])
    assert json.loads(done.output) == {"address": "h:1", "insecure_cluster": True}
    assert json.loads(runner.invoke(_placed, ["--backend", "ray", "--ray-address", "h:1"]).output) == {"address": "h:1"}
    shown = " ".join(runner.invoke(_placed, ["--help"]).output.split())
    assert "--insecure-cluster Ray: Deploy even if the cluster checks no tokens" in shown
    done = runner.invoke(_placed, ["--backend", "local", "--insecure-cluster"])
    assert done.exit_code == 2
    assert "--insecure-cluster is a Ray option: it needs --backend ray" in done.output


def test_the_autoscaling_delays_of_deployments_create() -> None:
    runner = CliRunner()
    flags = ["--backend", "ray", "--ray-address", "h:1", "--upscale-delay", "2", "--downscale-delay", "30"]
    done = runner.invoke(_placed, flags)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"address": "h:1", "upscale_delay_s": 2.0, "downscale_delay_s": 30.0}
    shown = " ".join(runner.invoke(_placed, ["--help"]).output.split())
    assert "--upscale-delay FLOAT RANGE Ray: Seconds the load must call for more replicas" in shown
    assert "--downscale-delay FLOAT RANGE Ray: Seconds the load must call for fewer replicas" in shown
    assert runner.invoke(_placed, ["--backend", "ray", "--ray-address", "h:1", "--upscale-delay", "-1"]).exit_code == 2
    # records stored before the options existed read back with the defaults
    old = RayOptions.from_json({"address": "h:1", "min_replicas": 1, "max_replicas": 4})
    assert (old.upscale_delay_s, old.downscale_delay_s) == (10.0, 300.0)
    with pytest.raises(InvalidSpec, match="downscale_delay_s must be between 0 and 86400 seconds, not -5"):
        RayOptions("h:1", downscale_delay_s=-5)
