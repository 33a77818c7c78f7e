"""CollectionSettings: checks that name the field and the fix, rates, JSON both ways, secret headers refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scorehost.collection import CollectionRule, CollectionSettings, is_secret_header
from scorehost.errors import InvalidSpec


def test_defaults_follow_azure(tmp_path: Path) -> None:
    settings = CollectionSettings(directory=tmp_path)
    assert settings.rolling_rate == "Hour"
    assert settings.max_payload_bytes == 256 * 1024
    assert settings.max_age_seconds == 30 * 86400
    assert settings.max_bytes == 5 * 1024**3
    assert settings.capture_header_names() == frozenset()
    assert settings.rate("model_inputs") == settings.rate("request") == 1.0


def test_directory_is_absolute_after_expanduser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CollectionSettings(directory=Path("~/data")).directory == tmp_path.resolve() / "data"
    monkeypatch.chdir(tmp_path)
    assert CollectionSettings(directory="relative").directory == tmp_path.resolve() / "relative"  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec, match="directory must name a folder"):
        CollectionSettings(directory="")  # type: ignore[arg-type]


def test_rates_multiply_and_named_collections_exclude_the_others(tmp_path: Path) -> None:
    settings = CollectionSettings(
        directory=tmp_path,
        sampling_rate=0.5,
        collections={"model_inputs": CollectionRule(sampling_rate=0.5), "request": CollectionRule(enabled=False)},
    )
    assert settings.rate("model_inputs") == 0.25
    assert settings.rate("request") == 0.0
    assert settings.rate("response") == 0.0  # not named while others are


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampling_rate": 1.5}, "sampling_rate must be a number from 0 to 1"),
        ({"sampling_rate": True}, "sampling_rate must be a number from 0 to 1"),
        ({"rolling_rate": "Week"}, "rolling_rate must be one of Year, Month, Day, Hour, Minute"),
        ({"max_payload_bytes": 0}, "max_payload_bytes must be a whole number greater than 0"),
        ({"queue_rows": 1.5}, "queue_rows must be a whole number greater than 0"),
        ({"queue_bytes": -1}, "queue_bytes must be a whole number greater than 0"),
        ({"max_bytes": 0}, r"max_bytes must be a whole number greater than 0 or null \(no limit\)"),
        ({"max_age_seconds": float("inf")}, "max_age_seconds must be a number greater than 0 or null"),
        ({"collections": {"../up": CollectionRule()}}, "collection name '../up' cannot be used: it becomes a folder"),
        ({"capture_headers": "x-trace"}, "capture_headers must be a list of header names"),
        ({"capture_headers": ("bad header",)}, "'bad header' is not a header name"),
        ({"sync_seconds": -1}, "sync_seconds must be a number of seconds, 0 or more"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message) as caught:
        CollectionSettings(directory=tmp_path, **changes)
    assert caught.value.status_code == 400
    assert isinstance(caught.value, ValueError)


def test_rolling_rate_is_read_case_insensitively(tmp_path: Path) -> None:
    assert CollectionSettings(directory=tmp_path, rolling_rate="minute").rolling_rate == "Minute"


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "Ocp-Apim-Subscription-Key",
        "x-ms-token-aad-id-token",
        "x-client-secret",
        "x-password",
        "x-credentials",
        "x-functions-key",
        "x-upstream-auth",
    ],
)
def test_secret_headers_are_refused_even_when_asked(tmp_path: Path, name: str) -> None:
    assert is_secret_header(name)
    settings = CollectionSettings(directory=tmp_path, capture_headers=(name, "X-Trace-Id"))
    assert settings.capture_header_names() == frozenset({"x-trace-id"})
    assert settings.refused_headers == (name.lower(),)


@pytest.mark.parametrize("name", ["x-trace-id", "user-agent", "content-type", "x-keyboard", "x-author"])
def test_ordinary_headers_are_kept(name: str) -> None:
    assert not is_secret_header(name)


def test_json_round_trip_keeps_refused_headers_so_the_reader_warns_again(tmp_path: Path) -> None:
    settings = CollectionSettings(
        directory=tmp_path,
        collections={"model_inputs": CollectionRule(sampling_rate=0.1)},
        capture_headers=("X-Trace", "Authorization"),
        rolling_rate="Day",
        max_age_seconds=None,
        max_bytes=None,
        source="/endpoints/e/deployments/blue",
        model_version="3",
    )
    data = settings.to_json()
    assert data["capture_headers"] == ["x-trace", "authorization"]
    again = CollectionSettings.from_json(data)
    assert again == settings
    assert hash(again) == hash(settings)
    assert again.refused_headers == ("authorization",)


def test_from_json_is_strict(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="unknown setting 'rate'; the settings are capture_headers, collections"):
        CollectionSettings.from_json({"directory": str(tmp_path), "rate": 1})
    with pytest.raises(InvalidSpec, match="directory is required"):
        CollectionSettings.from_json({})
    with pytest.raises(InvalidSpec, match=r"collections\['model_inputs'\]: unknown setting 'destination'"):
        CollectionSettings.from_json({"directory": str(tmp_path), "collections": {"model_inputs": {"destination": 1}}})
    with pytest.raises(InvalidSpec, match=r"collections\['model_inputs'\]: sampling_rate must be a number"):
        CollectionSettings.from_json(
            {"directory": str(tmp_path), "collections": {"model_inputs": {"sampling_rate": 2}}}
        )
    with pytest.raises(InvalidSpec, match="must be a JSON object"):
        CollectionSettings.from_json([])


def test_from_json_reads_azure_enabled_strings(tmp_path: Path) -> None:
    settings = CollectionSettings.from_json(
        {
            "directory": str(tmp_path),
            "collections": {"model_inputs": {"enabled": "True"}, "request": {"enabled": "False"}},
        }
    )
    assert settings.rate("model_inputs") == 1.0
    assert settings.rate("request") == 0.0
