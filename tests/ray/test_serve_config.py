"""`scorehost ray config`'s file, as users deploy it: Serve's own schema accepts it and `serve run` deploys it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from _ray_cluster import Cluster
from conftest import SCRIPTS

SERVE = Path(sys.executable).with_name("serve")
SCOREHOST = Path(sys.executable).with_name("scorehost")


def test_serve_run_deploys_the_rendered_file(ray_cluster: Cluster, tmp_path: Path) -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    rendered = subprocess.run(
        [str(SCOREHOST), "ray", "config", str(SCRIPTS / "echo.py"), "--name", "cfg", "--route-prefix", "/cfg"]
        + ["--replicas", "1", "--num-cpus", "0.1", "--port", str(ray_cluster.http_port)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ServeDeploySchema.model_validate(yaml.safe_load(rendered))  # what `serve deploy` checks it against
    config = tmp_path / "serve.yaml"
    config.write_text(rendered)
    deployed = subprocess.run(
        [str(SERVE), "run", "--address", ray_cluster.address, "--non-blocking", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    base = f"http://127.0.0.1:{ray_cluster.http_port}/cfg"
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=base, timeout=10) as client:
        while client.get("/ready").status_code != 200:  # `serve run --non-blocking` returns before the app is up
            assert time.monotonic() < deadline, "the deployed config never became ready"
            time.sleep(0.5)
        answer = client.post("/score", json={"data": [1, 2]})
        assert answer.status_code == 200
        assert answer.json() == {"received": "[1,2]"}
    from ray import serve

    serve.delete("cfg", _blocking=False)


def test_configs_from_azure_ml_deployment_files_pass_serves_schema(tmp_path: Path) -> None:
    """`scorehost ray config -f` for each sample deployment file (tests/cli/test_ray_cli.py checks what they hold):
    Serve's own schema, which Ray is installed for here, accepts every one."""
    import yaml
    from _kubernetes_samples import write_project
    from ray.serve.schema import ServeDeploySchema

    files = write_project(tmp_path)
    assert set(files) == {"blue", "green", "probes"}
    for file in files.values():
        done = subprocess.run([str(SCOREHOST), "ray", "config", "-f", str(file)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        ServeDeploySchema.model_validate(yaml.safe_load(done.stdout))


def test_the_autoscaling_delays_reach_serves_autoscaling_config() -> None:
    """`--upscale-delay`, `--downscale-delay` and scorehost's report timing, as Serve's own model reads them (no
    cluster): the look-back window is longer than the report interval, as Serve asks (it warns otherwise)."""
    import warnings

    import yaml
    from click.testing import CliRunner
    from ray.serve.config import AutoscalingConfig

    from scorehost.cli.ray import ray_config_command

    def autoscaling(*flags: str) -> AutoscalingConfig:
        done = CliRunner().invoke(ray_config_command, [str(SCRIPTS / "echo.py"), *flags])
        assert done.exit_code == 0, done.output
        [app] = yaml.safe_load(done.output)["applications"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", DeprecationWarning)  # metrics_interval_s: Serve's only knob for it, in 2.60
            return AutoscalingConfig(**app["deployments"][0]["autoscaling_config"])

    chosen = autoscaling("--upscale-delay", "5", "--downscale-delay", "60")
    assert (chosen.upscale_delay_s, chosen.downscale_delay_s) == (5.0, 60.0)
    default = autoscaling()
    assert (default.upscale_delay_s, default.downscale_delay_s) == (10.0, 300.0)  # Serve's own: 30 and 600
    assert (default.metrics_interval_s, default.look_back_period_s) == (2.0, 10.0)
    refused = CliRunner().invoke(ray_config_command, [str(SCRIPTS / "echo.py"), "--downscale-delay", "-1"])
    assert refused.exit_code == 2
    assert "--downscale-delay" in refused.output
