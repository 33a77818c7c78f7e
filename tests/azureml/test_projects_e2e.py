"""Azure ML projects deployed from their own files, unchanged, by the real CLI: a control plane, its gateway,
`scorehost serve` processes running in the environments the conda files declare (built with uv), and HTTP.

The folders recreate Azure/azureml-examples' `cli/endpoints/online/` layouts (tests/data/azureml: our own
scripts and conda files, written to the same layout); the models are trained at test time by each environment's
own scikit-learn, so the pickles match the versions that load them.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

DATA = Path(__file__).parents[1] / "data" / "azureml" / "cli"
SCRIPTS = Path(__file__).parents[1] / "scripts"

# Environments are built with uv: seconds with its package cache warm, longer on a machine that downloads first.
pytestmark = pytest.mark.timeout(900)

_LINEAR = """
import sys, joblib, numpy as np
from sklearn.linear_model import LinearRegression
X = np.random.default_rng(0).random((50, 10))
joblib.dump(LinearRegression().fit(X, X @ np.arange(1, 11)), sys.argv[1])
"""
_IRIS = """
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
iris = load_iris()
joblib.dump(LogisticRegression(max_iter=1000).fit(iris.data, iris.target), sys.argv[1])
"""


def scorehost(*args: str, cwd: Path | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=cwd,
        timeout=600,
    )
    assert done.returncode == code, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project folders: `cli/endpoints/online/` with managed/sample, model-1, model-2, ..."""
    shutil.copytree(DATA, tmp_path / "cli")
    return tmp_path / "cli" / "endpoints" / "online"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One workspace and control plane for the module's tests (each start and stop is four CLI and server
    processes); each test has endpoints of its own names, deleted after it. Yields the folder and the gateway."""
    home = tmp_path_factory.mktemp("projects-workspace")
    port = _free_port()
    # Started before conftest's clean_environ runs: only the variables named here.
    ours = ("SCOREHOST_", "AZUREML_", "OTEL_EXPORTER_OTLP_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env["SCOREHOST_HOME"] = str(home)

    def controlplane(*args: str) -> None:
        command = [sys.executable, "-m", "scorehost", "controlplane", *args]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"

    controlplane("start", "--api-port", "0", "--gateway-port", str(port))
    try:
        yield home, f"http://127.0.0.1:{port}"
    finally:
        controlplane("stop")


@pytest.fixture
def gateway(workspace: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module's control plane's gateway; SCOREHOST_HOME is its workspace. The test's endpoints are deleted
    after it (their deployments would otherwise serve on, idle, until the module ends)."""
    from scorehost.client import Client

    home, url = workspace
    monkeypatch.setenv("SCOREHOST_HOME", str(home))
    yield url
    with Client() as client:
        for endpoint in client.list_endpoints():
            client.delete_endpoint(endpoint["name"])


def environment_python(conda_or_requirements: Path) -> Path:
    """The interpreter of the environment a file declares, built here exactly as the CLI builds it (so the
    deployment finds it cached)."""
    from scorehost.azureml.apply import environment_of_file
    from scorehost.environments import EnvironmentSpec, ensure_environment

    declared = environment_of_file(conda_or_requirements, nearest_python=False, warnings=[])
    built = ensure_environment(EnvironmentSpec.from_json(declared), Path(os.environ["SCOREHOST_HOME"]))
    return built.python


def train(python: Path, program: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), "-c", program, str(destination)], check=True, timeout=300)


def key_of(endpoint: str) -> str:
    return _key(os.environ["SCOREHOST_HOME"], endpoint)


@functools.cache
def _key(home: str, endpoint: str) -> str:
    """Asked once per workspace and endpoint: each ask is a CLI process."""
    return str(json.loads(scorehost("endpoints", "keys", endpoint, "--json").stdout)["primary"])


def score(gateway: str, endpoint: str, body: Any = None, *, deployment: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {key_of(endpoint)}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    answer = httpx.post(f"{gateway}/endpoints/{endpoint}/score", json=body, headers=headers, timeout=60, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer


def test_the_managed_sample_runs_from_its_own_files(project: Path, gateway: str) -> None:
    sample = project / "managed" / "sample"
    python = environment_python(project / "model-1" / "environment" / "conda.yaml")
    for model in ("model-1", "model-2"):
        train(python, _LINEAR, project / model / "model" / "sklearn_regression_model.pkl")
    request = json.loads((sample / "sample-request.json").read_text())

    created = scorehost("endpoints", "create", "-f", "endpoint.yml", cwd=sample)
    assert created.stdout.startswith(f"created my-endpoint: {gateway}/endpoints/my-endpoint/score")
    assert created.stderr == ""  # $schema, name, auth_mode: nothing to warn about
    blue = scorehost("deployments", "create", "-f", "blue-deployment.yml", "--all-traffic", cwd=sample)
    assert blue.stdout == "my-endpoint/blue generation 1: ready\nmy-endpoint: blue=100\n"
    assert "instance_type" in blue.stderr  # ignored, and said so once
    assert "azureml-inference-server-http==1.4.1" in blue.stderr  # not installed: scorehost is the server
    assert score(gateway, "my-endpoint", request).json() == pytest.approx([385.0, 220.0])

    scorehost("deployments", "create", "-f", "green-deployment.yml", cwd=sample)
    assert score(gateway, "my-endpoint", request, deployment="green").json() == [0.5, 0.5]
    scorehost("endpoints", "update", "-f", "endpoint.yml", "--set", "traffic.blue=50", "--set", "traffic.green=50",
              cwd=sample)  # fmt: skip
    seen = Counter(json.dumps(score(gateway, "my-endpoint", request).json()) for _ in range(40))
    assert set(seen) == {
        json.dumps([0.5, 0.5]),
        json.dumps(score(gateway, "my-endpoint", request, deployment="blue").json()),
    }

    # One environment for both (their conda files declare the same packages), and one model: the two pickles are
    # the same bytes, so the content-addressed registration is one version, as on Azure ML.
    environments = json.loads(scorehost("environments", "list", "--json").stdout)
    ours = [e for e in environments if any(user.startswith("my-endpoint/") for user in e["used_by"])]
    assert len(ours) == 1  # (the workspace holds the other tests' environments too)
    assert sorted(ours[0]["used_by"]) == ["my-endpoint/blue", "my-endpoint/green"]
    deployments = json.loads(scorehost("endpoints", "show", "my-endpoint", "--json").stdout)["deployments"]
    assert len({d["models"][0] for d in deployments}) == 1
    # The serve processes run the environment's interpreter, not scorehost's.
    for deployment in deployments:
        for instance in deployment["status"]["instances"]:
            command = Path(f"/proc/{instance['pid']}/cmdline").read_bytes().split(b"\0")
            assert command[0].decode() == str(python)


def test_two_deployments_each_see_their_own_scikit_learn(tmp_path: Path, gateway: str) -> None:
    versions = {"old": "1.5.2", "new": "1.7.0"}
    for name, version in versions.items():
        (tmp_path / f"{name}.txt").write_text(f"scikit-learn=={version}\n")
    scorehost("endpoints", "create", "sklearn")
    for color, name in (("blue", "old"), ("green", "new")):
        created = scorehost(
            "deployments", "create", "sklearn", color, "--script", str(SCRIPTS / "sklearn_version.py"),
            "--environment", str(tmp_path / f"{name}.txt"),
        )  # fmt: skip
        assert created.stdout == f"sklearn/{color} generation 1: ready\n"
    scorehost("endpoints", "traffic", "sklearn", "blue=50", "green=50")
    answers = [score(gateway, "sklearn", [1]).json() for _ in range(40)]
    assert {answer["sklearn"] for answer in answers} == {"1.5.2", "1.7.0"}
    for color, version in (("blue", "1.5.2"), ("green", "1.7.0")):
        answer = score(gateway, "sklearn", [1], deployment=color).json()
        assert answer["sklearn"] == version
        assert answer["location"].startswith(os.environ["SCOREHOST_HOME"])  # the environment's, not ours


def test_the_inference_schema_sample_answers_each_of_its_inputs(project: Path, gateway: str) -> None:
    folder = project / "managed" / "inference-schema"
    train(environment_python(folder / "env.yml"), _IRIS, folder / "models" / "iris.pkl")
    registered = scorehost("models", "register", "-f", "model.yml", cwd=folder)
    assert registered.stdout.startswith("registered azureml-infschema:1 (models: 1 file")
    scorehost("endpoints", "create", "infschema")
    for kind in ("numpy", "standard", "pandas"):
        scorehost("deployments", "create", "-f", f"deployment-{kind}.yml", "--set", "endpoint_name=infschema",
                  cwd=folder)  # fmt: skip
        body = json.loads((folder / "sample-inputs" / f"{kind}.json").read_text())
        answer = score(gateway, "infschema", body, deployment=f"infsrv-{kind}").json()
        assert answer == {"Category": ["Virginica", "Setosa"]}, kind


def test_the_binary_payloads_sample_takes_files(project: Path, gateway: str) -> None:
    from PIL import Image

    folder = project / "managed" / "binary-payloads"
    picture = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(picture, format="JPEG")
    (folder / "input.jpg").write_bytes(picture.getvalue())
    scorehost("endpoints", "create", "binary")
    deployment = ["-f", "binary-payloads-deployment.yml", "--set", "endpoint_name=binary"]
    single = ["--set", "code_configuration.scoring_script=single-file-to-file-score.py"]
    scorehost("deployments", "create", *deployment, *single, cwd=folder)
    upload = {"file": ("input.jpg", picture.getvalue(), "image/jpeg")}
    answer = score(gateway, "binary", files=upload)
    assert answer.headers["content-type"].startswith("image/jpg")
    assert Image.open(io.BytesIO(answer.content)).size == (128, 128)
    nothing = httpx.post(f"{gateway}/endpoints/binary/score", headers={"Authorization": f"Bearer {key_of('binary')}"},
                         files={"other": ("x", b"x")}, timeout=60)  # fmt: skip
    assert (nothing.status_code, nothing.text) == (422, "No file uploaded")

    multi = ["--set", "code_configuration.scoring_script=multi-file-to-json-score.py"]
    updated = scorehost("deployments", "update", *deployment, *multi, cwd=folder)
    assert updated.stdout == "binary/binary-payload generation 2: ready\n"
    files = [("file[]", ("input.jpg", picture.getvalue(), "image/jpeg")), ("file[]", ("copy.jpg", picture.getvalue()))]
    assert score(gateway, "binary", files=files).json() == {
        "response": [{"filename": "input.jpg", "size": [300, 200]}, {"filename": "copy.jpg", "size": [300, 200]}]
    }


def test_a_following_deployment_rolls_when_its_alias_moves_and_no_request_fails(tmp_path: Path, gateway: str) -> None:
    for version in (1, 2):
        (tmp_path / f"v{version}").mkdir()
        (tmp_path / f"v{version}" / "marker.txt").write_text(f"model {version}\n")
        scorehost("models", "register", "marker", str(tmp_path / f"v{version}" / "marker.txt"))
    scorehost("models", "alias", "marker", "production", "1")
    (tmp_path / "deployment.yml").write_text(
        "name: blue\nendpoint_name: follow\nmodel: azureml:marker@production\n"
        f"code_configuration:\n  code: {SCRIPTS}\n  scoring_script: model_marker.py\n"
        "instance_count: 2\nscorehost:\n  follow_model: true\n"
    )
    scorehost("endpoints", "create", "follow")
    scorehost("deployments", "create", "-f", str(tmp_path / "deployment.yml"), "--all-traffic")
    key = key_of("follow")
    answers: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            while not stop.is_set():
                reply = client.post(f"{gateway}/endpoints/follow/score", json={"data": 1})
                answers[reply.json()["model"] if reply.status_code == 200 else f"HTTP {reply.status_code}"] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 5
        while answers["model 1"] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        scorehost("models", "alias", "marker", "production", "2")
        deadline = time.monotonic() + 120
        while answers["model 2"] < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(answers) == {"model 1", "model 2"}, answers  # no status but 200, ever
    shown = json.loads(scorehost("endpoints", "show", "follow", "--json").stdout)["deployments"][0]
    assert (shown["generation"], shown["models"], shown["follow"]) == (2, ["marker:2"], ["marker:production"])


def test_an_environment_that_cannot_be_built_fails_the_update_and_the_old_generation_serves(gateway: str) -> None:
    from scorehost.client import Client
    from scorehost.environments import EnvironmentSpec

    scorehost("endpoints", "create", "broken")
    scorehost("deployments", "create", "broken", "blue", "--script", str(SCRIPTS / "whoami" / "score.py"),
              "--env", "DEPLOYMENT_NAME=blue-1", "--all-traffic")  # fmt: skip
    # Through the API, as a script or the console would: the control plane builds the environment itself.
    impossible = EnvironmentSpec.from_requirements(["scorehost-no-such-package-anywhere==1.0"]).to_json()
    with Client() as client:
        client.update_deployment("broken", "blue", python_environment=impossible)
        deadline = time.monotonic() + 300
        while (shown := client.get_deployment("broken", "blue"))["failure"] is None:
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
    assert "scorehost-no-such-package-anywhere" in shown["failure"]  # uv's own words name the package
    assert (shown["generation"], shown["serving_generation"]) == (2, 1)
    assert score(gateway, "broken", [1]).json()["deployment"] == "blue-1"
