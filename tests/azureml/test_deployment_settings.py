"""read_deployment_file: numbers, booleans, request settings, probes, scale settings and kept fields."""

from __future__ import annotations

import pytest
from _azureml_samples import DEPLOYMENT_HEAD as HEAD
from _azureml_samples import OnlineSamples

from scorehost.azureml.deployment import (
    DeploymentFile,
    Probe,
    RequestSettings,
    ScaleSettings,
    read_deployment_file,
)
from scorehost.errors import ProjectFileError


def _read(online: OnlineSamples, body: str, overrides: tuple[str, ...] = ()) -> DeploymentFile:
    return read_deployment_file(online.write("d.yml", body), overrides)


def _refused(online: OnlineSamples, body: str, overrides: tuple[str, ...] = ()) -> str:
    path = online.write("d.yml", body)
    with pytest.raises(ProjectFileError) as caught:
        read_deployment_file(path, overrides)
    return caught.value.message


# -- numbers, booleans, settings -------------------------------------------------------------------------------


def test_strings_for_integers(online: OnlineSamples) -> None:
    deployment = _read(
        online,
        HEAD
        + """\
instance_count: "2"
request_settings:
  request_timeout_ms: "3000"
  max_concurrent_requests_per_instance: '4'
liveness_probe:
  period: "15"
""",
    )
    assert deployment.instances == 2
    assert deployment.request == RequestSettings(request_timeout_ms=3000, max_concurrent_requests_per_instance=4)
    assert deployment.liveness == Probe(period=15)


@pytest.mark.parametrize(
    ("value", "expected"), [("'True'", True), ("true", True), ("'false'", False), ("False", False)]
)
def test_booleans(online: OnlineSamples, value: str, expected: bool) -> None:
    assert _read(online, HEAD + f"app_insights_enabled: {value}\n").app_insights is expected


@pytest.mark.parametrize("value", ["0", "-1", "'0'", "2000"])
def test_instance_count_out_of_range_is_refused_with_its_line(online: OnlineSamples, value: str) -> None:
    message = _refused(online, HEAD + f"instance_count: {value}\n")
    assert "d.yml, line 6: instance_count must be between 1 and 1024" in message


def test_instance_count_from_set(online: OnlineSamples) -> None:
    assert _read(online, HEAD + "instance_count: 1\n", ("instance_count=2",)).instances == 2
    message = _refused(online, HEAD + "instance_count: 1\n", ("instance_count=0",))
    assert message.startswith("d.yml (--set instance_count): instance_count must be between")


def test_request_timeout_from_set_creates_request_settings(online: OnlineSamples) -> None:
    deployment = _read(online, HEAD, ("request_settings.request_timeout_ms=3000",))
    assert deployment.request == RequestSettings(request_timeout_ms=3000)


def test_bug_unicode_digits_are_a_project_file_error(online: OnlineSamples) -> None:
    # fields._kind_ok accepts any str.isdigit() text as a whole number, and '²'.isdigit() is True; values.integer
    # then calls int('²'), which raises a bare ValueError instead of a ProjectFileError naming the file and line.
    message = _refused(online, HEAD + "instance_count: '²'\n")
    assert "d.yml, line 6" in message


def test_probes_get_azure_defaults(online: OnlineSamples) -> None:
    deployment = _read(
        online,
        HEAD
        + """\
liveness_probe:
  initial_delay: 5
readiness_probe:
  initial_delay: 0
  period: 3
  timeout: 4
  success_threshold: 2
  failure_threshold: 5
""",
    )
    assert deployment.liveness == Probe(
        initial_delay=5, period=10, timeout=2, success_threshold=1, failure_threshold=30
    )
    assert deployment.readiness == Probe(0, 3, 4, 2, 5)
    assert deployment.readiness.budget_seconds == 0 + 3 * 5
    assert Probe().budget_seconds == 10 + 10 * 30


def test_probe_custom_container_fields_are_ignored_with_a_warning(online: OnlineSamples) -> None:
    deployment = _read(online, HEAD + "liveness_probe:\n  path: /health\n  port: 8080\n  period: 5\n")
    assert deployment.liveness == Probe(period=5)
    assert len(deployment.warnings) == 1
    assert "liveness_probe.path" in deployment.warnings[0]
    assert "liveness_probe.port" in deployment.warnings[0]


@pytest.mark.parametrize(("field", "value"), [("period", 0), ("timeout", 0), ("failure_threshold", 3601)])
def test_probe_values_out_of_range_are_refused(online: OnlineSamples, field: str, value: int) -> None:
    message = _refused(online, HEAD + f"readiness_probe:\n  {field}: {value}\n")
    assert f"d.yml, line 7: readiness_probe.{field} must be between" in message


def test_scale_settings_target_utilization(online: OnlineSamples) -> None:
    deployment = _read(
        online,
        HEAD
        + """\
scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: 3
  polling_interval: 10
  target_utilization_percentage: 70
""",
    )
    assert deployment.scale == ScaleSettings("target_utilization", 1, 3, 10, 70)


def test_scale_settings_default(online: OnlineSamples) -> None:
    assert _read(online, HEAD + "scale_settings:\n  type: default\n").scale == ScaleSettings()


@pytest.mark.parametrize(("written", "read"), [("Default", "default"), ("TargetUtilization", "target_utilization")])
def test_bug_scale_settings_type_in_camel_case_as_azure_accepts(online: OnlineSamples, written: str, read: str) -> None:
    # Azure reads scale_settings.type with camel_to_snake: `TargetUtilization` is target_utilization. deployment.py
    # only lower-cases it ('targetutilization') and refuses it.
    assert _read(online, HEAD + f"scale_settings:\n  type: {written}\n").scale == ScaleSettings(read)


def test_scale_settings_bad_type_and_min_above_max(online: OnlineSamples) -> None:
    assert "default, target_utilization" in _refused(online, HEAD + "scale_settings:\n  type: auto\n")
    message = _refused(
        online, HEAD + "scale_settings:\n  type: target_utilization\n  min_instances: 5\n  max_instances: 2\n"
    )
    assert "d.yml, line 6: min_instances is above max_instances" in message


def test_environment_variables_tags_description_data_collector(online: OnlineSamples) -> None:
    deployment = _read(
        online,
        HEAD
        + """\
description: the blue one
tags: {stage: 1}
environment_variables:
  WORKERS: 4
  DEBUG: true
  NAME: blue
data_collector:
  collections:
    model_inputs: {enabled: 'True'}
  sampling_rate: 0.5
""",
    )
    assert deployment.description == "the blue one"
    assert deployment.tags == {"stage": "1"}
    assert deployment.variables == {"WORKERS": "4", "DEBUG": "true", "NAME": "blue"}
    assert deployment.collection == {"collect": ["model_inputs"], "collect_sampling_rate": 0.5}
