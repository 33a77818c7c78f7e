"""`azureml:NAME:VERSION`, `azureml:NAME@latest` and `azureml:NAME@LABEL`: Azure ML's asset references, read as
references into scorehost's registry (a label is an alias)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AssetReference", "parse_asset_reference"]


@dataclass(frozen=True, slots=True)
class AssetReference:
    """A registered asset by name and either a version or a label (`latest`, or an alias)."""

    name: str
    version: str | None = None
    label: str | None = None

    @property
    def registry_ref(self) -> str:
        """The same asset in scorehost's own reference syntax (`NAME:VERSION`, `NAME:ALIAS`, `NAME:latest`)."""
        return f"{self.name}:{self.version if self.version is not None else self.label}"

    @property
    def follows(self) -> bool:
        """Whether it names a moving target (a label) rather than one version."""
        return self.label is not None

    def __str__(self) -> str:
        return (
            f"azureml:{self.name}:{self.version}" if self.version is not None else f"azureml:{self.name}@{self.label}"
        )


def parse_asset_reference(text: str) -> AssetReference:
    """ValueError, saying what is accepted, for anything else (a registry URI, a missing version)."""
    if text.startswith("azureml://"):
        raise ValueError(
            f"{text!r} points into an Azure ML registry or workspace, which scorehost cannot reach; register the "
            "asset here and name it azureml:NAME:VERSION"
        )
    if not text.startswith("azureml:"):
        raise ValueError(f"{text!r} is not a reference: write azureml:NAME:VERSION or azureml:NAME@latest")
    body = text.removeprefix("azureml:")
    name, at, label = body.partition("@")
    if at:
        if not name or not label or ":" in name:
            raise ValueError(f"{text!r} is not azureml:NAME@LABEL")
        return AssetReference(name, label=label)
    name, colon, version = body.rpartition(":")
    if not colon or not name or not version:
        raise ValueError(f"{text!r} has no version: write azureml:{body}:VERSION or azureml:{body}@latest")
    return AssetReference(name, version=version)
