"""What the Ray backend asks Serve for, from a deployment's Ray options (no cluster: the rendering alone)."""

from __future__ import annotations

from pathlib import Path

from scorehost.deploy.backends.ray_serve import deployment_options
from scorehost.deploy.spec import DeploymentSpec, RayOptions


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
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 8, "target_ongoing_requests": 4}
