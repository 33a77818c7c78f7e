"""Where a deployment's collected data lives, and the serve settings that send it there.

A deployment collects when its serve options name collections (`collect`, from its YAML's `data_collector`
or `deployments create --collect`); the backend then adds the folder, `<home>/collected/<endpoint>/<deployment>/`
(Azure's `{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/{HH}/` below it), and the rows' `source`. Their
`deploymentversion` (the generation) and `modelversion`, what `scorehost serve` resolved the models to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scorehost.deploy.spec import DeploymentSpec, check_resource_name

__all__ = ["COLLECTED", "collected_folder", "collection_serve_options"]

COLLECTED = "collected"


def collected_folder(home: Path, endpoint: str, deployment: str) -> Path:
    """The deployment's collected data; both names are checked, so neither can lead out of the workspace."""
    check_resource_name("endpoint", endpoint)
    check_resource_name("deployment", deployment)
    return home / COLLECTED / endpoint / deployment


def collection_serve_options(spec: DeploymentSpec, home: Path, generation: int) -> dict[str, Any]:
    """The serve options the control plane adds to a deployment that collects (none for one that does not)."""
    if not spec.serve_options.get("collect"):
        return {}
    return {
        "collect_dir": str(collected_folder(home, spec.endpoint, spec.name)),
        "collect_source": f"/endpoints/{spec.endpoint}/deployments/{spec.name}",
        "collect_deployment_version": str(generation),
    }
