"""read_endpoint_file on real endpoint YAML files: names, auth modes, traffic and mirror traffic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _azureml_samples import OnlineSamples

from scorehost.azureml.endpoint import EndpointFile, read_endpoint_file
from scorehost.deploy.spec import Traffic
from scorehost.errors import ProjectFileError

YamlFile = Callable[..., Path]


def _endpoint(yaml_file: YamlFile, body: str, overrides: tuple[str, ...] = ()) -> EndpointFile:
    return read_endpoint_file(yaml_file(body, "endpoint.yml"), overrides)


def _refused(yaml_file: YamlFile, body: str, overrides: tuple[str, ...] = ()) -> str:
    path = yaml_file(body, "endpoint.yml")
    with pytest.raises(ProjectFileError) as caught:
        read_endpoint_file(path, overrides)
    return caught.value.message


def test_the_azure_sample_endpoint(online: OnlineSamples) -> None:
    endpoint = read_endpoint_file(online.endpoint)
    assert endpoint.name == "my-endpoint"
    assert endpoint.auth == "key"
    assert endpoint.traffic == {}
    assert endpoint.mirror is None
    assert endpoint.description == ""
    assert endpoint.tags == {}
    assert endpoint.warnings == []  # only $schema, name and auth_mode: $schema is dropped silently
    assert endpoint.traffic_spec() == Traffic({})


def test_the_azure_kubernetes_sample_endpoint(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(
        yaml_file,
        """\
        $schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineEndpoint.schema.json
        name: my-endpoint
        compute: azureml:inferencecompute
        auth_mode: Key
        tags:
          tag1: endpoint-tag1-value
        """,
    )
    assert endpoint.name == "my-endpoint"
    assert endpoint.auth == "key"
    assert endpoint.tags == {"tag1": "endpoint-tag1-value"}
    assert len(endpoint.warnings) == 1
    assert "compute" in endpoint.warnings[0]


def test_description_and_tags_are_text(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(
        yaml_file, "name: my-endpoint\ndescription: scores houses\ntags: {tier: 1, public: true, owner: null}\n"
    )
    assert endpoint.description == "scores houses"
    assert endpoint.tags == {"tier": "1", "public": "true", "owner": ""}


# -- auth_mode -----------------------------------------------------------------------------------------------------


def test_no_auth_mode_is_key(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(yaml_file, "name: my-endpoint\n")
    assert endpoint.auth == "key"
    assert endpoint.warnings == []


@pytest.mark.parametrize("mode", ["key", "Key", "KEY"])
def test_key_auth(yaml_file: YamlFile, mode: str) -> None:
    endpoint = _endpoint(yaml_file, f"name: my-endpoint\nauth_mode: {mode}\n")
    assert endpoint.auth == "key"
    assert endpoint.warnings == []


@pytest.mark.parametrize("mode", ["aml_token", "aad_token"])
def test_token_modes_become_key_with_a_warning(yaml_file: YamlFile, mode: str) -> None:
    endpoint = _endpoint(yaml_file, f"name: my-endpoint\nauth_mode: {mode}\n")
    assert endpoint.auth == "key"
    assert len(endpoint.warnings) == 1
    warning = endpoint.warnings[0]
    assert warning.startswith("endpoint.yml: ")
    assert mode in warning
    assert "scorehost endpoints keys my-endpoint" in warning


@pytest.mark.parametrize("mode", ["AMLToken", "AADToken"])
def test_bug_camel_case_token_modes_are_accepted_as_azure_does(yaml_file: YamlFile, mode: str) -> None:
    # Azure's auth_mode is a StringTransformedEnum with camel_to_snake: `AMLToken` is read as aml_token (the
    # reference notes Key/AMLToken accepted by az ml). endpoint.py only lower-cases, so `AMLToken` becomes
    # 'amltoken' and is refused.
    endpoint = _endpoint(yaml_file, f"name: my-endpoint\nauth_mode: {mode}\n")
    assert endpoint.auth == "key"
    assert len(endpoint.warnings) == 1


def test_a_bad_auth_mode_is_refused_with_its_line(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\ndescription: x\nauth_mode: token\n")
    assert ", line 3: " in message
    assert "endpoint.yml" in message
    assert "key, aml_token, aad_token" in message
    assert "'token'" in message


def test_auth_mode_from_set(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(yaml_file, "name: my-endpoint\nauth_mode: key\n", ("auth_mode=aml_token",))
    assert endpoint.auth == "key"
    assert len(endpoint.warnings) == 1
    message = _refused(yaml_file, "name: my-endpoint\nauth_mode: key\n", ("auth_mode=none",))
    assert "endpoint.yml (--set auth_mode)" in message


# -- traffic ---------------------------------------------------------------------------------------------------------


def test_traffic_and_mirror_traffic(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(
        yaml_file,
        """\
        name: my-endpoint
        traffic:
          blue: 90
          green: 10
        mirror_traffic:
          canary: 20
        """,
    )
    assert endpoint.traffic == {"blue": 90, "green": 10}
    assert endpoint.mirror == ("canary", 20)
    spec = endpoint.traffic_spec()
    assert dict(spec.split) == {"blue": 90, "green": 10}
    assert spec.mirror == "canary"
    assert spec.mirror_percent == 20


def test_traffic_percentages_may_be_strings(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(yaml_file, "name: my-endpoint\ntraffic: {blue: '100', green: '0'}\n")
    assert endpoint.traffic == {"blue": 100, "green": 0}


def test_traffic_from_set(yaml_file: YamlFile) -> None:
    endpoint = _endpoint(
        yaml_file, "name: my-endpoint\ntraffic: {blue: 100}\n", ("traffic.blue=90", "traffic.green=10")
    )
    assert endpoint.traffic == {"blue": 90, "green": 10}


def test_traffic_not_summing_to_100_is_refused_with_its_line(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\nauth_mode: key\ntraffic:\n  blue: 80\n  green: 10\n")
    assert "endpoint.yml, line 3: " in message
    assert "sum to 100" in message
    assert "90" in message


def test_traffic_over_100_is_refused(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\ntraffic:\n  blue: 90\n  green: 20\n")
    assert "endpoint.yml, line 2: " in message
    assert "sum to 100" in message


@pytest.mark.parametrize("value", ["150", "-5", "ten", "50.5", "true", "''"])
def test_a_bad_percentage_is_refused_with_its_line(yaml_file: YamlFile, value: str) -> None:
    message = _refused(yaml_file, f"name: my-endpoint\ntraffic:\n  blue: {value}\n")
    assert "endpoint.yml, line 3: " in message
    assert "traffic.blue must be a percentage (0-100)" in message


def test_a_bad_deployment_name_in_traffic_is_refused(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\ntraffic:\n  blue_1: 100\n")
    assert "endpoint.yml, line 2" in message
    assert "'blue_1' is not a valid deployment name" in message


def test_mirror_traffic_names_one_deployment(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\nmirror_traffic:\n  green: 10\n  red: 10\n")
    assert "endpoint.yml, line 2" in message
    assert "mirror_traffic names one deployment" in message


def test_mirror_of_a_deployment_with_live_traffic_is_refused(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\ntraffic: {blue: 90, green: 10}\nmirror_traffic: {green: 10}\n")
    assert "green takes live traffic" in message


def test_a_bad_mirror_percentage_is_refused(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\nmirror_traffic:\n  green: 101\n")
    assert "endpoint.yml, line 3" in message
    assert "mirror_traffic.green must be a percentage" in message


def test_traffic_must_be_a_mapping(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\ntraffic: blue=100\n")
    assert "endpoint.yml, line 2: traffic must be a mapping" in message


# -- names -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "my-endpoint", "Endpoint-1", "a" * 32, "endpt-moe-12345"])
def test_good_names(yaml_file: YamlFile, name: str) -> None:
    assert _endpoint(yaml_file, f"name: {name}\n").name == name


@pytest.mark.parametrize("name", ["my_endpoint", "ab", "1abc", "ends-", "a" * 33, "my.endpoint", "'-abc'", "éndpoint"])
def test_bad_names_are_refused_with_the_line(yaml_file: YamlFile, name: str) -> None:
    message = _refused(yaml_file, f"description: d\nname: {name}\n")
    assert "endpoint.yml, line 2: " in message
    assert "is not a valid endpoint name" in message
    assert "3-32 letters, digits and '-'" in message


def test_a_number_as_name_is_refused(yaml_file: YamlFile) -> None:
    assert "is not a valid endpoint name" in _refused(yaml_file, "name: 12345\n")


def test_no_name_is_refused_and_set_supplies_it(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "auth_mode: key\n")
    assert "has no name" in message
    assert "--set name=" in message
    endpoint = _endpoint(yaml_file, "auth_mode: key\n", ("name=endpt-moe-1234",))
    assert endpoint.name == "endpt-moe-1234"


def test_a_bad_name_from_set_says_set(yaml_file: YamlFile) -> None:
    message = _refused(yaml_file, "name: my-endpoint\n", ("name=x",))
    assert message.startswith("endpoint.yml (--set name): ")
    assert "'x' is not a valid endpoint name" in message
