"""`scorehost ray config` as users run it: the installed command, its YAML read back. Deploying the file on a
real cluster is tests/ray/test_serve_config.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _kubernetes_samples import write_project
from _ray_cluster import ray_installed
from conftest import SCRIPTS

SCOREHOST = Path(sys.executable).parent / "scorehost"
# How fast Serve reacts, besides the bounds and the target (scorehost.ray.autoscaling; tests/ray/test_serve_config.py)
TIMING = {"upscale_delay_s": 10.0, "downscale_delay_s": 300.0, "metrics_interval_s": 2.0, "look_back_period_s": 10.0}


def ray_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCOREHOST), "ray", "config", *args], capture_output=True, text=True, timeout=60)


def rendered(*args: str) -> dict[str, Any]:
    """The config `scorehost ray config ARGS` prints, checked against Ray's own schema where Ray is installed (the
    `-m ray` run: tests/ray/test_serve_config.py renders these samples there)."""
    done = ray_config(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Ray Serve config for")  # how to run it, for whoever opens the file
    document: dict[str, Any] = yaml.safe_load(done.stdout)
    if ray_installed():
        from ray.serve.schema import ServeDeploySchema

        ServeDeploySchema.model_validate(document)  # what `serve deploy` checks it against
    return document


def deployment_of(config: dict[str, Any]) -> dict[str, Any]:
    [app] = config["applications"]
    [deployment] = app["deployments"]
    found: dict[str, Any] = deployment
    return found


def test_names_the_script_by_its_absolute_path_and_autoscales_by_default() -> None:
    config = rendered(str(SCRIPTS / "echo.py"), "--model-dir", "/models/m1")
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8000, "request_timeout_s": 60.0}
    [app] = config["applications"]
    assert app["import_path"] == "scorehost.ray.serve_app:app_builder"
    assert "runtime_env" not in app  # nothing shipped: the path must exist on every node, as the header says
    assert app["args"] == {"entry_script": str(SCRIPTS / "echo.py"), "model_dir": "/models/m1", "timeout": 60.0}
    [deployment] = app["deployments"]
    assert deployment["name"] == "ScoreHost"
    assert deployment["autoscaling_config"] == {
        **{"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2.0},
        **TIMING,
    }
    assert "num_replicas" not in deployment
    assert deployment["ray_actor_options"] == {"num_cpus": 1.0}
    assert "must exist at these paths on every node" in ray_config(str(SCRIPTS / "echo.py")).stdout


def test_fixed_replicas_limits_and_code_from_a_uri(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    script = tmp_path / "app" / "score.py"
    script.write_text("def init(): pass\ndef run(data): return data\n")
    args = ["--replicas", "3", "--max-ongoing", "2", "--max-queued", "5", "--threads", "2"]
    config = rendered(str(script), "--working-dir-uri", "s3://bucket/code.zip", "--working-dir", str(tmp_path), *args)
    [app] = config["applications"]
    assert app["runtime_env"] == {"working_dir": "s3://bucket/code.zip"}
    assert app["args"]["entry_script"] == "app/score.py"  # relative to the folder the zip holds
    assert app["args"]["threads"] == 2
    [deployment] = app["deployments"]
    assert deployment["num_replicas"] == 3
    assert "autoscaling_config" not in deployment
    assert (deployment["max_ongoing_requests"], deployment["max_queued_requests"]) == (2, 5)
    default_folder = rendered(str(script), "--working-dir-uri", "s3://bucket/code.zip")
    assert default_folder["applications"][0]["args"]["entry_script"] == "score.py"


def test_bad_arguments_are_refused_with_the_fix(tmp_path: Path) -> None:
    done = ray_config(str(SCRIPTS / "echo.py"), "--min-replicas", "5", "--max-replicas", "2")
    assert done.returncode == 2
    assert "--min-replicas must not exceed --max-replicas" in done.stderr
    done = ray_config(str(SCRIPTS / "echo.py"), "--working-dir-uri", "s3://b/c.zip", "--working-dir", str(tmp_path))
    assert done.returncode == 2
    assert "is not inside the working dir" in done.stderr
    done = ray_config(str(SCRIPTS / "echo.py"), "--working-dir", str(SCRIPTS))
    assert done.returncode == 2
    assert "give both" in done.stderr
    done = ray_config(str(tmp_path / "missing.py"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_project(tmp_path)


def test_the_blue_sample_fixed_replicas_cpu_and_timeout(files: dict[str, Path], tmp_path: Path) -> None:
    done = ray_config("-f", str(files["blue"]))
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("warning: ") for line in done.stderr.splitlines())
    assert "max_queue_wait_ms" in done.stderr  # named as not used
    config = rendered("-f", str(files["blue"]))
    assert config["http_options"]["request_timeout_s"] == 3.0
    [app] = config["applications"]
    assert app["name"] == "blue"
    script = tmp_path / "model-1" / "onlinescoring" / "score.py"
    assert app["args"] == {"entry_script": str(script), "timeout": 3.0}  # the file's code folder, absolute
    assert "runtime_env" not in app
    deployment = deployment_of(config)
    assert deployment["num_replicas"] == 1  # instance_count, scale_settings default
    assert "autoscaling_config" not in deployment
    assert deployment["ray_actor_options"] == {"num_cpus": 0.1}


def test_the_green_sample_autoscales_on_requests_in_progress(files: dict[str, Path]) -> None:
    deployment = deployment_of(rendered("-f", str(files["green"])))
    assert "num_replicas" not in deployment
    # 70 % of max_ongoing_requests (8) in progress per replica
    assert deployment["autoscaling_config"] == {
        **{"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 5.6},
        **TIMING,
    }
    overridden = rendered("-f", str(files["green"]), "--set", "request_settings.max_concurrent_requests_per_instance=1")
    deployment = deployment_of(overridden)
    assert deployment["max_ongoing_requests"] == 1
    assert deployment["autoscaling_config"]["target_ongoing_requests"] == 1.0  # 0.7, raised to one request


def test_probes_variables_gpu_and_concurrency(files: dict[str, Path]) -> None:
    config = rendered("-f", str(files["probes"]))
    [app] = config["applications"]
    assert app["runtime_env"] == {"env_vars": {"WORKER_THREADS": "4", "MODEL_FLAVOR": "small"}}
    deployment = deployment_of(config)
    assert deployment["num_replicas"] == 2
    assert deployment["max_ongoing_requests"] == 4
    assert deployment["health_check_period_s"] == 3.0  # the readiness probe's period, before liveness's 5
    assert deployment["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 1.0}  # 500m
    text = files["probes"].read_text()
    files["probes"].write_text(text[: text.index("readiness_probe:")] + text[text.index("instance_count:") :])
    assert deployment_of(rendered("-f", str(files["probes"])))["health_check_period_s"] == 5.0  # liveness's
    shipped = rendered("-f", str(files["probes"]), "--working-dir-uri", "s3://bucket/code.zip")
    [app] = shipped["applications"]
    assert app["args"]["entry_script"] == "score.py"  # relative to the code folder the zip holds
    assert app["runtime_env"] == {"working_dir": "s3://bucket/code.zip", "env_vars": app["runtime_env"]["env_vars"]}


def test_a_gpu_vm_size_and_shared_gpus(files: dict[str, Path]) -> None:
    sized = ["--set", "instance_type=Standard_NC12s_v3"]
    assert deployment_of(rendered("-f", str(files["blue"]), *sized))["ray_actor_options"] == {
        "num_cpus": 0.1,
        "num_gpus": 2.0,  # the size's two V100s per replica
    }
    shared = ["--set", "resources.requests.gpu=0.5", *sized]  # resources win over the size: half a GPU each
    assert deployment_of(rendered("-f", str(files["blue"]), *shared))["ray_actor_options"]["num_gpus"] == 0.5
    flag = rendered(str(SCRIPTS / "echo.py"), "--num-gpus", "0.25")
    assert deployment_of(flag)["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.25}


def test_flags_given_win_over_the_file(files: dict[str, Path]) -> None:
    flags = ["--name", "mine", "--replicas", "2", "--num-cpus", "2", "--num-gpus", "0", "--request-timeout", "9"]
    config = rendered("-f", str(files["green"]), str(SCRIPTS / "echo.py"), *flags, "--max-ongoing", "3")
    [app] = config["applications"]
    assert app["name"] == "mine"
    assert app["args"]["entry_script"] == str(SCRIPTS / "echo.py")  # an explicit SCRIPT wins
    assert app["args"]["timeout"] == 9.0
    assert config["http_options"]["request_timeout_s"] == 9.0
    deployment = deployment_of(config)
    assert deployment["num_replicas"] == 2  # over target_utilization
    assert "autoscaling_config" not in deployment
    assert deployment["max_ongoing_requests"] == 3
    assert deployment["ray_actor_options"] == {"num_cpus": 2.0}
    # autoscaling flags turn a fixed-size file into an autoscaled one; the file's other values stay
    deployment = deployment_of(rendered("-f", str(files["blue"]), "--max-replicas", "6", "--max-ongoing", "4"))
    assert deployment["autoscaling_config"] == {
        **{"min_replicas": 1, "max_replicas": 6, "target_ongoing_requests": 2.0},
        **TIMING,
    }
    # --max-ongoing given: the target follows it
    deployment = deployment_of(rendered("-f", str(files["green"]), "--max-ongoing", "10"))
    assert deployment["autoscaling_config"]["target_ongoing_requests"] == 7.0


def test_a_bad_deployment_file_exits_1_naming_the_line(files: dict[str, Path]) -> None:
    files["blue"].write_text(files["blue"].read_text().replace('cpu: "0.1"', 'cpu: "half"'))
    done = ray_config("-f", str(files["blue"]))
    assert done.returncode == 1
    assert f"Error: {files['blue']}, line 18: 'half' is not a CPU amount" in done.stderr
    assert "Traceback" not in done.stderr
    done = ray_config("-f", str(files["green"]), "--set", "scale_settings.max_instances=many")
    assert done.returncode == 1
    assert "scale_settings.max_instances must be a whole number" in done.stderr
    assert ray_config().returncode == 2
    done = ray_config(str(SCRIPTS / "echo.py"), "--set", "instance_count=2")
    assert done.returncode == 2
    assert "--set changes the fields of a -f file" in done.stderr
