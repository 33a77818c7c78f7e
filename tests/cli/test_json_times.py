"""One time format in every `--json` output and API answer: ISO 8601 UTC to the millisecond (scorehost.timestamps).

In-process: the API over a real SQLite file and socket (tests/_control_plane.py), the CLI through click's runner.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _control_plane import api_server
from click.testing import CliRunner

from scorehost.cli import cli
from scorehost.client import Client
from scorehost.deploy.backends.base import InstanceState, InstanceStatus
from scorehost.timestamps import iso_utc, parse_iso_utc

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_the_format_and_its_way_back() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1796652158.7359726) == "2026-12-07T14:02:38.736Z"
    assert iso_utc(59.9996) == "1970-01-01T00:01:00.000Z"  # rounds into the next second, not to ".1000"
    assert iso_utc(None) is None
    assert parse_iso_utc("2026-12-07T14:02:38.736Z") == pytest.approx(1796652158.736)
    assert parse_iso_utc("2026-12-07T14:02:38+00:00") == parse_iso_utc("2026-12-07T14:02:38")  # naive: UTC
    assert datetime.fromisoformat(iso_utc(1e9)).tzinfo == UTC
    with pytest.raises(ValueError, match="yesterday"):
        parse_iso_utc("yesterday")


def test_the_api_answers_iso_times(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    with api_server(tmp_path) as (address, _), Client(address=address) as client:
        endpoint = client.create_endpoint("mnist")
        deployment = client.create_deployment("mnist", "blue", script=tmp_path / "score.py", code_dir=tmp_path)
        shown = client.get_endpoint("mnist")
    assert ISO.fullmatch(endpoint["created_at"])
    assert shown["created_at"] == endpoint["created_at"]
    assert ISO.fullmatch(deployment["created_at"])
    assert ISO.fullmatch(deployment["updated_at"])
    assert shown["deployments"][0]["created_at"] == deployment["created_at"]
    assert parse_iso_utc(endpoint["created_at"]) <= parse_iso_utc(deployment["created_at"])


def test_instances_report_when_they_started() -> None:
    started = InstanceStatus("blue-1", InstanceState.READY, started_at=1796652158.5).to_json()
    assert started["started_at"] == "2026-12-07T14:02:38.500Z"
    assert InstanceStatus("blue-2", InstanceState.STARTING).to_json()["started_at"] is None


def test_models_json_times(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    runner = CliRunner()
    home = str(tmp_path / "home")
    registered = runner.invoke(cli, ["models", "register", "m", str(model), "--json", "--home", home])
    assert registered.exit_code == 0, registered.output
    listed = runner.invoke(cli, ["models", "list", "--json", "--home", home])
    versions = runner.invoke(cli, ["models", "list", "m", "--json", "--home", home])
    assert ISO.fullmatch(json.loads(registered.stdout)["created_at"])
    assert ISO.fullmatch(json.loads(listed.stdout)[0]["created_at"])
    assert json.loads(versions.stdout)[0]["created_at"] == json.loads(registered.stdout)["created_at"]


def test_environment_times() -> None:
    from scorehost.environments.builder import BuiltEnvironment
    from scorehost.environments.registered import RegisteredEnvironment

    assert RegisteredEnvironment("env", "1", None, created_at=1796652158.25).to_json()["created_at"] == (
        "2026-12-07T14:02:38.250Z"
    )
    # Built before the one format: read back as every other time is shown.
    old = BuiltEnvironment.from_json(
        {"key": "k", "python_version": "3.11.9", "created_at": "2026-12-07T14:02:38+00:00"}, Path("/nowhere")
    )
    assert old.to_json()["created_at"] == "2026-12-07T14:02:38.000Z"
