"""parse_asset_reference: Azure ML's `azureml:NAME:VERSION` and `azureml:NAME@LABEL`, and what it refuses."""

from __future__ import annotations

import pytest

from scorehost.azureml.references import AssetReference, parse_asset_reference


@pytest.mark.parametrize(
    ("text", "name", "version", "registry_ref"),
    [
        ("azureml:my-model:1", "my-model", "1", "my-model:1"),
        ("azureml:azureml-infschema:12345", "azureml-infschema", "12345", "azureml-infschema:12345"),
        ("azureml:my.model_v2:10", "my.model_v2", "10", "my.model_v2:10"),
        ("azureml:my-env:1", "my-env", "1", "my-env:1"),
    ],
)
def test_name_and_version(text: str, name: str, version: str, registry_ref: str) -> None:
    reference = parse_asset_reference(text)
    assert reference == AssetReference(name, version=version)
    assert reference.label is None
    assert reference.registry_ref == registry_ref
    assert reference.follows is False
    assert str(reference) == text


@pytest.mark.parametrize(
    ("text", "name", "label"),
    [
        ("azureml:my-model@latest", "my-model", "latest"),
        ("azureml:my-model@production", "my-model", "production"),
    ],
)
def test_name_and_label(text: str, name: str, label: str) -> None:
    reference = parse_asset_reference(text)
    assert reference == AssetReference(name, label=label)
    assert reference.version is None
    assert reference.registry_ref == f"{name}:{label}"
    assert reference.follows is True
    assert str(reference) == text


@pytest.mark.parametrize(
    "text",
    [
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        "azureml://registries/azureml/models/sklearn/versions/1",
        "azureml://subscriptions/x/resourcegroups/y/workspaces/w/models/m/versions/1",
    ],
)
def test_registry_and_workspace_uris_are_refused_with_the_way_out(text: str) -> None:
    with pytest.raises(ValueError, match="Azure ML registry or workspace") as caught:
        parse_asset_reference(text)
    assert text in str(caught.value)
    assert "azureml:NAME:VERSION" in str(caught.value)


@pytest.mark.parametrize("text", ["my-model:1", "my-model", "", "azure:my-model:1", "AzureML:my-model:1"])
def test_text_without_the_prefix_is_not_a_reference(text: str) -> None:
    with pytest.raises(ValueError, match="is not a reference") as caught:
        parse_asset_reference(text)
    assert "azureml:NAME:VERSION" in str(caught.value)


def test_a_name_without_version_says_how_to_add_one() -> None:
    with pytest.raises(ValueError, match="has no version") as caught:
        parse_asset_reference("azureml:my-model")
    assert "azureml:my-model:VERSION" in str(caught.value)
    assert "azureml:my-model@latest" in str(caught.value)


@pytest.mark.parametrize("text", ["azureml:", "azureml::1", "azureml:my-model:"])
def test_empty_parts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="has no version"):
        parse_asset_reference(text)


@pytest.mark.parametrize("text", ["azureml:my-model@", "azureml:@latest", "azureml:my-model:1@latest"])
def test_bad_labels_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not azureml:NAME@LABEL"):
        parse_asset_reference(text)
