"""ServeSettings: defaults, precedence (flags > SCOREHOST_* > the reference's variables), units, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from scorehost.config import ServeSettings, parse_size, parse_workers
from scorehost.host.run_input import RunInput


def test_defaults() -> None:
    settings = ServeSettings()
    assert settings.entry_script is None
    assert settings.model_dir is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 5001
    assert settings.workers == 1
    assert settings.preload is False
    assert settings.threads == 1
    assert settings.request_timeout == 60.0
    assert settings.max_body_size == 100 * 1024 * 1024
    assert settings.run_input is RunInput.AUTO
    assert settings.log_format == "text"
    assert settings.log_level == "info"


# --- precedence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "ours", "reference", "values"),
    [
        ("entry_script", "SCOREHOST_ENTRY_SCRIPT", "AZUREML_ENTRY_SCRIPT", ("kw.py", "ours.py", "ref.py")),
        ("model_dir", "SCOREHOST_MODEL_DIR", "AZUREML_MODEL_DIR", ("/kw", "/ours", "/ref")),
        ("port", "SCOREHOST_PORT", "SERVER_PORT", ("7001", "7002", "7003")),
        ("workers", "SCOREHOST_WORKERS", "WORKER_COUNT", ("3", "4", "5")),
        ("preload", "SCOREHOST_PRELOAD", "WORKER_PRELOAD", ("true", "false", "true")),
    ],
)
def test_flags_beat_scorehost_variables_beat_reference_variables(
    monkeypatch: pytest.MonkeyPatch, field: str, ours: str, reference: str, values: tuple[str, str, str]
) -> None:
    explicit, ours_value, reference_value = values

    def current(**kwargs: object) -> object:
        value = getattr(ServeSettings(**kwargs), field)  # type: ignore[arg-type]
        return str(value).lower() if isinstance(value, bool | Path) else str(value)

    monkeypatch.setenv(reference, reference_value)
    assert current() == reference_value
    monkeypatch.setenv(ours, ours_value)
    assert current() == ours_value
    assert current(**{field: explicit}) == explicit


def test_reference_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AZUREML_ENTRY_SCRIPT": "app/score.py",
        "AZUREML_MODEL_DIR": "/var/azureml-app/model",
        "SERVER_PORT": "31311",
        "WORKER_COUNT": "2",
        "WORKER_PRELOAD": "true",
        "SCORING_TIMEOUT_MS": "60000",
    }.items():
        monkeypatch.setenv(name, value)
    settings = ServeSettings()
    assert settings.entry_script == Path("app/score.py")
    assert settings.model_dir == "/var/azureml-app/model"
    assert settings.port == 31311
    assert settings.workers == 2
    assert settings.preload is True
    assert settings.request_timeout == 60.0


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("scorehost_threads", "4")
    assert ServeSettings().threads == 4


def test_plain_scorehost_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREHOST_HOST", "0.0.0.0")
    monkeypatch.setenv("SCOREHOST_RUN_INPUT", "data")
    monkeypatch.setenv("SCOREHOST_LOG_FORMAT", "json")
    monkeypatch.setenv("SCOREHOST_MAX_BODY_SIZE", "10MB")
    settings = ServeSettings()
    assert settings.host == "0.0.0.0"
    assert settings.run_input is RunInput.DATA
    assert settings.log_format == "json"
    assert settings.max_body_size == 10_000_000


def test_unrelated_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREHOST_NOT_A_SETTING", "x")
    assert ServeSettings().port == 5001


# --- the deadline ----------------------------------------------------------------------------------------


def test_scoring_timeout_ms_is_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_TIMEOUT_MS", "1500")
    settings = ServeSettings()
    assert settings.scoring_timeout_ms == 1500
    assert settings.request_timeout == 1.5


def test_timeout_beats_scoring_timeout_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_TIMEOUT_MS", "1500")
    assert ServeSettings(timeout=3).request_timeout == 3.0
    monkeypatch.setenv("SCOREHOST_TIMEOUT", "2.5")
    assert ServeSettings().request_timeout == 2.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"scoring_timeout_ms": 0}, "scoring_timeout_ms"),
        ({"port": 70000}, "port"),
        ({"port": -1}, "port"),
        ({"threads": 0}, "threads"),
        ({"workers": 0}, "workers"),
        ({"workers": "many"}, "workers"),
        ({"max_body_size": "10 parsecs"}, "max_body_size"),
        ({"max_body_size": -5}, "max_body_size"),
        ({"run_input": "xml"}, "run_input"),
        ({"log_format": "yaml"}, "log_format"),
        ({"log_level": "verbose"}, "log_level"),
        ({"graceful_timeout": -1}, "graceful_timeout"),
    ],
)
def test_invalid_values_raise(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ServeSettings(**kwargs)  # type: ignore[arg-type]
    assert [error["loc"][0] for error in caught.value.errors()] == [field]


@pytest.mark.parametrize(("variable", "value"), [("SCORING_TIMEOUT_MS", "soon"), ("SERVER_PORT", "http")])
def test_invalid_reference_variables_raise(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        ServeSettings()


# --- workers ---------------------------------------------------------------------------------------------


def test_worker_count_auto_is_one_per_available_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_COUNT", "auto")
    assert ServeSettings().workers == len(os.sched_getaffinity(0))
    assert ServeSettings(workers="AUTO").workers == len(os.sched_getaffinity(0))  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("8", 8), (" auto ", len(os.sched_getaffinity(0)))])
def test_parse_workers(value: object, expected: int) -> None:
    assert parse_workers(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_parse_workers_refuses(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - int() and our check word these differently
        parse_workers(value)


# --- sizes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1048576, 1048576),
        ("1048576", 1048576),
        ("100b", 100),
        ("512k", 512_000),
        ("512kb", 512_000),
        ("512 KB", 512_000),
        ("512KiB", 512 * 1024),
        ("10MB", 10_000_000),
        ("10m", 10_000_000),
        ("100MiB", 100 * 1024**2),
        ("100mib", 100 * 1024**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("2G", 2 * 1000**3),
        ("1TiB", 1024**4),
        (" 64 KiB ", 64 * 1024),
        ("0", 0),
    ],
)
def test_parse_size_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "ten MB", "10 XB", "10i", "-1", "1e6", "10 MiBs", "1,000"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size; write e.g. 100MiB, 10MB or 1048576"):
        parse_size(text)


def test_max_body_size_takes_units() -> None:
    assert ServeSettings(max_body_size="1MiB").max_body_size == 1024 * 1024  # type: ignore[arg-type]


# --- registered models -----------------------------------------------------------------------------------


def test_models_come_from_flags_or_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCOREHOST_HOME")  # set for every test by conftest
    assert ServeSettings().models == ()
    assert ServeSettings().home is None
    monkeypatch.setenv("SCOREHOST_MODELS", " sklearn_mnist:production, encoder:3 ,")
    monkeypatch.setenv("SCOREHOST_HOME", "/srv/scorehost")
    settings = ServeSettings()
    assert settings.models == ("sklearn_mnist:production", "encoder:3")
    assert settings.home == Path("/srv/scorehost")
    assert ServeSettings(models=["a", "b:2"]).models == ("a", "b:2")  # type: ignore[arg-type]


def test_models_and_model_dir_conflict() -> None:
    assert ServeSettings(models=("a",)).model_source_conflict() is None
    assert ServeSettings(model_dir="/m").model_source_conflict() is None
    message = ServeSettings(models=("a",), model_dir="/m").model_source_conflict("AZUREML_MODEL_DIR")
    assert message is not None
    assert message.startswith("--model and --model-dir cannot be used together")
    assert "AZUREML_MODEL_DIR (/m) sets it too" in message
