"""An endpoint YAML file (`managedOnlineEndpoint`, `kubernetesOnlineEndpoint`) as scorehost's endpoint."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scorehost.azureml.document import Document, read_document
from scorehost.azureml.fields import ENDPOINT, check_document
from scorehost.azureml.values import choice, text, text_map
from scorehost.deploy.spec import Traffic, check_resource_name
from scorehost.errors import InvalidSpec

__all__ = ["EndpointFile", "read_endpoint_file"]

# Azure's token modes need Azure's token service. Mapping them to keys keeps the endpoint closed (an open endpoint
# would be the surprise), and the warning says where the keys are.
_TOKEN_MODES = ("aml_token", "aad_token")


@dataclass(slots=True)
class EndpointFile:
    """What an endpoint YAML declares, checked."""

    document: Document
    name: str
    auth: str  # "key" (scorehost has no Azure token service)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: tuple[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def traffic_spec(self) -> Traffic:
        return Traffic(
            self.traffic,
            mirror=self.mirror[0] if self.mirror else None,
            mirror_percent=self.mirror[1] if self.mirror else 0,
        )


def read_endpoint_file(path: Path, overrides: Sequence[str] = ()) -> EndpointFile:
    """Read and check `path`; ProjectFileError names the file, the line and the fix."""
    document = read_document(path, overrides)
    warnings = check_document(document, ENDPOINT, "online endpoint")
    data = document.data
    name = text(data.get("name"))
    if not name:
        raise document.error((), "the endpoint has no name: add `name: my-endpoint` (or --set name=...)")
    try:
        check_resource_name("endpoint", name)
    except InvalidSpec as error:
        raise document.error(("name",), error.message) from None
    auth = choice(document, ("auth_mode",), data.get("auth_mode") or "key", ("key", *_TOKEN_MODES))
    if auth in _TOKEN_MODES:
        warnings.append(
            f"{path.name}: auth_mode {auth} needs Azure's token service; the endpoint uses keys instead "
            f"(`scorehost endpoints keys {name}`, sent as `Authorization: Bearer KEY`, as Azure's keys are)"
        )
        auth = "key"
    endpoint = EndpointFile(
        document, name, auth, text(data.get("description")), text_map(data.get("tags")), warnings=warnings
    )
    endpoint.traffic = _percentages(document, "traffic")
    mirror = _percentages(document, "mirror_traffic")
    if len(mirror) > 1:
        raise document.error(("mirror_traffic",), "mirror_traffic names one deployment (e.g. green: 10)")
    if mirror:
        endpoint.mirror = next(iter(mirror.items()))
    try:
        Traffic(endpoint.traffic)
    except InvalidSpec as error:
        raise document.error(("traffic",), error.message) from None
    try:
        endpoint.traffic_spec()
    except InvalidSpec as error:
        raise document.error(("mirror_traffic",), error.message) from None
    return endpoint


def _percentages(document: Document, key: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for deployment, value in (document.data.get(key) or {}).items():
        number = str(value).strip()
        if not re.fullmatch(r"[0-9]{1,3}", number) or int(number) > 100:
            raise document.error((key, deployment), f"{key}.{deployment} must be a percentage (0-100), not {value!r}")
        found[deployment] = int(number)
    return found
