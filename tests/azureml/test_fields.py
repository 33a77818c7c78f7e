"""check_document against Azure ML's schemas: unknown fields refused with file and line, ignored fields warned
once, kept fields accepted as they are, values of the wrong kind refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from scorehost.azureml.deployment import read_deployment_file
from scorehost.azureml.document import read_document
from scorehost.azureml.endpoint import read_endpoint_file
from scorehost.azureml.fields import DEPLOYMENT, ENDPOINT, ENVIRONMENT, MODEL, Field, Kind, Use, check_document
from scorehost.errors import ProjectFileError

YamlFile = Callable[..., Path]


def _check(path: Path, schema: Mapping[str, Field] = DEPLOYMENT, overrides: tuple[str, ...] = ()) -> list[str]:
    return check_document(read_document(path, overrides), schema, "online deployment")


def _refused(path: Path, schema: Mapping[str, Field] = DEPLOYMENT, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ProjectFileError) as caught:
        _check(path, schema, overrides)
    return caught.value.message


# -- the schemas hold every field Azure ML's marshmallow schemas accept (azure-ai-ml 1.35.2) ------------------------


def test_deployment_schema_has_every_azure_field() -> None:
    azure = {
        # DeploymentSchema
        *("name", "endpoint_name", "description", "id", "tags", "properties", "model", "code_configuration"),
        *("environment", "environment_variables"),
        # OnlineDeploymentSchema
        *("app_insights_enabled", "scale_settings", "request_settings", "liveness_probe", "readiness_probe"),
        *("provisioning_state", "instance_count", "type", "model_mount_path", "instance_type", "data_collector"),
        # Managed and Kubernetes
        *("egress_public_network_access", "private_network_connection", "creation_context", "resources"),
        "$schema",
    }
    assert azure <= set(DEPLOYMENT)
    assert {"code", "scoring_script"} == set(DEPLOYMENT["code_configuration"].children)
    assert {"request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms"} == set(
        DEPLOYMENT["request_settings"].children
    )
    probe = {"initial_delay", "period", "timeout", "success_threshold", "failure_threshold"}
    assert probe <= set(DEPLOYMENT["liveness_probe"].children)
    assert probe <= set(DEPLOYMENT["readiness_probe"].children)
    assert {"type", "min_instances", "max_instances", "polling_interval", "target_utilization_percentage"} == set(
        DEPLOYMENT["scale_settings"].children
    )
    assert {"requests", "limits"} == set(DEPLOYMENT["resources"].children)


def test_endpoint_schema_has_every_azure_field() -> None:
    azure = {
        *("$schema", "name", "id", "description", "tags", "provisioning_state", "properties", "auth_mode"),
        *("scoring_uri", "location", "openapi_uri", "identity", "traffic", "mirror_traffic", "kind"),
        *("public_network_access", "compute"),
    }
    assert azure <= set(ENDPOINT)


def test_model_and_environment_schemas_have_every_azure_field() -> None:
    model = {
        *("$schema", "name", "id", "type", "path", "version", "description", "properties", "tags", "stage"),
        *("flavors", "datastore", "system_metadata", "default_deployment_template", "allowed_deployment_templates"),
        *("utc_time_created", "creation_context", "job_name", "latest_version", "intellectual_property"),
    }
    assert model <= set(MODEL)
    environment = {
        *("$schema", "name", "version", "description", "tags", "image", "conda_file", "build", "os_type"),
        *("inference_config", "datastore", "auto_delete_setting", "creation_context", "latest_version", "id"),
    }
    assert environment <= set(ENVIRONMENT)
    assert set(DEPLOYMENT["model"].children) == set(MODEL)
    assert set(DEPLOYMENT["environment"].children) == set(ENVIRONMENT)
    assert DEPLOYMENT["model"].kind is Kind.REFERENCE_OR_MAPPING


def test_uses() -> None:
    assert DEPLOYMENT["instance_type"].use is Use.IGNORED
    assert DEPLOYMENT["egress_public_network_access"].use is Use.IGNORED
    assert DEPLOYMENT["$schema"].use is Use.DROPPED
    assert DEPLOYMENT["provisioning_state"].use is Use.DROPPED
    assert DEPLOYMENT["data_collector"].use is Use.USED
    assert DEPLOYMENT["request_settings"].use is Use.USED
    assert ENDPOINT["identity"].use is Use.IGNORED
    for name in ("kind", "scoring_uri", "openapi_uri", "swagger_uri", "id"):
        assert ENDPOINT[name].use is Use.DROPPED


# -- unknown fields --------------------------------------------------------------------------------------------------


def test_unknown_top_level_field_names_file_line_and_field(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\ninstance_cuont: 2\n")
    message = _refused(path)
    assert f"{path}, line 3: instance_cuont" in message
    assert "1 field not in Azure ML's online deployment schema" in message
    assert "instance_count" in message  # the list of fields, so the typo can be seen


def test_unknown_nested_field_names_its_own_line_and_dotted_path(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        name: blue
        endpoint_name: my-endpoint
        request_settings:
          max_queue_wait_ms: 100
          request_timeout: 3000
        """
    )
    message = _refused(path)
    assert f"{path}, line 5: request_settings.request_timeout" in message


def test_several_unknown_fields_are_listed_at_once(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        name: blue
        endpoint_name: my-endpoint
        instance_cuont: 2
        model:
          path: model
          paths: model
        request_settings:
          request_timeout: 3000
        liveness_probe:
          delay: 3
        foo: bar
        """
    )
    message = _refused(path)
    assert "5 fields not in Azure ML's online deployment schema" in message
    for line, name in [
        (3, "instance_cuont"),
        (6, "model.paths"),
        (8, "request_settings.request_timeout"),
        (10, "liveness_probe.delay"),
        (11, "foo"),
    ]:
        assert f"{path}, line {line}: {name}" in message
    assert "remove them or fix the spelling" in message


def test_unknown_field_from_set_says_set(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\n")
    message = _refused(path, overrides=("request_settings.request_timeout=3000",))
    assert f"{path.name} (--set request_settings.request_timeout)" in message


def test_unknown_field_in_an_endpoint_file(yaml_file: YamlFile) -> None:
    path = yaml_file("name: my-endpoint\nauth_mode: key\ntraffic_split:\n  blue: 100\n", "endpoint.yml")
    with pytest.raises(ProjectFileError) as caught:
        read_endpoint_file(path)
    assert f"{path}, line 3: traffic_split" in caught.value.message
    assert "online endpoint schema" in caught.value.message


def test_unknown_field_in_a_deployment_file(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\nscale_settings:\n  type: default\n  minimum: 1\n")
    with pytest.raises(ProjectFileError) as caught:
        read_deployment_file(path)
    assert f"{path}, line 5: scale_settings.minimum" in caught.value.message


# -- ignored and kept fields -----------------------------------------------------------------------------------------


def test_ignored_fields_give_exactly_one_warning_line_naming_them(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
        name: blue
        endpoint_name: my-endpoint
        instance_type: Standard_DS3_v2
        egress_public_network_access: disabled
        model_mount_path: /var/mounted
        """,
        "blue.yml",
    )
    warnings = _check(path)
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert warnings[0].startswith("blue.yml: ")
    for name in ("instance_type", "egress_public_network_access", "model_mount_path"):
        assert name in warnings[0]
    assert "$schema" not in warnings[0]


def test_endpoint_identity_is_ignored_with_one_warning(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
        name: my-endpoint
        identity:
          type: user_assigned
          user_assigned_identities:
            - resource_id: /subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/z
        public_network_access: disabled
        """,
        "endpoint.yml",
    )
    warnings = read_endpoint_file(path).warnings
    assert len(warnings) == 1
    for name in ("identity", "public_network_access"):
        assert name in warnings[0]
    assert "$schema" not in warnings[0]


def test_no_ignored_fields_no_warning(yaml_file: YamlFile) -> None:
    assert _check(yaml_file("name: blue\nendpoint_name: my-endpoint\ninstance_count: 1\n")) == []


def test_data_collector_accepts_azures_fields_and_any_collection_name(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        name: blue
        endpoint_name: my-endpoint
        data_collector:
          collections:
            model_inputs:
              enabled: 'True'
              data:
                name: my_model_inputs_data_asset
                path: azureml://datastores/workspaceblobstore/paths/modelDataCollector/my_endpoint/blue/model_inputs
                version: 1
            model_outputs:
              enabled: 'False'
          rolling_rate: hour
          sampling_rate: 0.5
          request_logging:
            capture_headers: [x-request-id, x-client]
        properties:
          owner: search
        """
    )
    assert _check(path) == []


def test_data_collector_refuses_a_field_outside_azures_schema(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: e\ndata_collector:\n  sampling_rate: 1\n  sample_rate: 0.5\n")
    with pytest.raises(ProjectFileError) as refused:
        _check(path)
    assert "line 5: data_collector.sample_rate" in refused.value.message


def test_server_set_fields_pasted_from_az_ml_show_are_dropped_silently(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        name: blue
        endpoint_name: my-endpoint
        id: /subscriptions/x/resourceGroups/y/providers/Microsoft.MachineLearningServices/workspaces/w
        provisioning_state: Succeeded
        """
    )
    assert _check(path) == []


def test_endpoint_fields_pasted_from_az_ml_show_are_dropped_silently(yaml_file: YamlFile) -> None:
    path = yaml_file(
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
        name: my-endpoint
        auth_mode: key
        kind: Managed
        provisioning_state: Succeeded
        scoring_uri: https://my-endpoint.eastus.inference.ml.azure.com/score
        openapi_uri: https://my-endpoint.eastus.inference.ml.azure.com/swagger.json
        swagger_uri: https://my-endpoint.eastus.inference.ml.azure.com/swagger.json
        """,
        "endpoint.yml",
    )
    assert read_endpoint_file(path).warnings == []


def test_an_empty_field_is_as_if_absent(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\ninstance_count:\nrequest_settings:\ninstance_type:\n")
    assert _check(path) == []


# -- kinds -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("instance_count: many", "instance_count must be a whole number"),
        ("instance_count: 1.5", "instance_count must be a whole number"),
        ("instance_count: true", "instance_count must be a whole number"),
        ("app_insights_enabled: maybe", "app_insights_enabled must be true or false"),
        ("code_configuration: score.py", "code_configuration must be a mapping of fields"),
        ("tags: [a, b]", "tags must be a mapping of names to strings"),
        ("tags: {a: {b: 1}}", "tags must be a mapping of names to strings"),
        ("model: 3", "model must be a reference (azureml:NAME:VERSION) or a mapping of fields"),
        ("description: [a]", "description must be a string"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_with_its_line(yaml_file: YamlFile, line: str, expected: str) -> None:
    path = yaml_file(f"name: blue\nendpoint_name: my-endpoint\n{line}\n")
    message = _refused(path)
    assert message.startswith(f"{path}, line 3: {expected}")


def test_a_nested_value_of_the_wrong_kind_is_refused_with_its_line(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\nliveness_probe:\n  period: often\n")
    assert _refused(path).startswith(f"{path}, line 4: liveness_probe.period must be a whole number")


def test_a_value_of_the_wrong_kind_from_set_says_set(yaml_file: YamlFile) -> None:
    path = yaml_file("name: blue\nendpoint_name: my-endpoint\ninstance_count: 1\n")
    message = _refused(path, overrides=("instance_count=many",))
    assert message.startswith(f"{path.name} (--set instance_count): instance_count must be a whole number")


@pytest.mark.parametrize("value", ["2", "'2'", '"2"', "' 2 '"])
def test_whole_numbers_may_be_written_as_strings(yaml_file: YamlFile, value: str) -> None:
    assert _check(yaml_file(f"name: blue\nendpoint_name: my-endpoint\ninstance_count: {value}\n")) == []


@pytest.mark.parametrize("value", ["true", "'True'", "False", "'false'"])
def test_booleans_may_be_written_as_strings(yaml_file: YamlFile, value: str) -> None:
    assert _check(yaml_file(f"name: blue\nendpoint_name: my-endpoint\napp_insights_enabled: {value}\n")) == []


def test_bug_kubernetes_resources_accept_gpu_as_azure_does(yaml_file: YamlFile) -> None:
    # Azure's ResourceSettingsSchema has the fields cpu, memory and gpu (a pre_load renames `nvidia.com/gpu` to
    # `gpu`), so `gpu: "1"` is accepted by az ml. fields.py's _RESOURCE_AMOUNTS lists only cpu, memory and
    # nvidia.com/gpu, so `gpu` is refused as an unknown field.
    path = yaml_file(
        """\
        name: blue
        endpoint_name: my-endpoint
        type: kubernetes
        resources:
          requests: {cpu: "0.1", memory: "0.1Gi", gpu: "1"}
          limits: {cpu: "0.2", memory: "200Mi", nvidia.com/gpu: "1"}
        """
    )
    assert _check(path) == []
