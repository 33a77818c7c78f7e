"""`scorehost ray config` as users run it: the installed command, its YAML read back. Deploying the file on a
real cluster is tests/ray/test_serve_config.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import SCRIPTS

SCOREHOST = Path(sys.executable).parent / "scorehost"


def ray_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCOREHOST), "ray", "config", *args], capture_output=True, text=True, timeout=60)


def rendered(*args: str) -> dict[str, Any]:
    done = ray_config(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Ray Serve config for")  # how to run it, for whoever opens the file
    document: dict[str, Any] = yaml.safe_load(done.stdout)
    return document


def test_names_the_script_by_its_absolute_path_and_autoscales_by_default() -> None:
    config = rendered(str(SCRIPTS / "echo.py"), "--model-dir", "/models/m1")
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8000, "request_timeout_s": 60.0}
    [app] = config["applications"]
    assert app["import_path"] == "scorehost.ray.serve_app:app_builder"
    assert "runtime_env" not in app  # nothing shipped: the path must exist on every node, as the header says
    assert app["args"] == {"entry_script": str(SCRIPTS / "echo.py"), "model_dir": "/models/m1", "timeout": 60.0}
    [deployment] = app["deployments"]
    assert deployment["name"] == "ScoreHost"
    assert deployment["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2.0}
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
