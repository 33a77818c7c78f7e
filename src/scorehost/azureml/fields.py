"""The fields of Azure ML's CLI v2 YAML schemas, what each does here, and the check of a file against them.

Every field Azure ML accepts is accepted. A field is *used* (it changes what runs), *kept* (stored for a
feature that reads it later, such as a model's `flavors`), or *ignored* (it has no meaning off Azure:
networking, identities, an `instance_type` that is not a GPU size); ignored fields are listed in one warning.
A field outside the schema is an error naming the file and line, as `az ml` refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from scorehost.azureml.document import Document, FieldPath, dotted

__all__ = [
    "DEPLOYMENT",
    "ENDPOINT",
    "ENVIRONMENT",
    "MODEL",
    "Field",
    "Kind",
    "Use",
    "check_document",
]


class Kind(Enum):
    TEXT = "a string"
    INTEGER = "a whole number"
    NUMBER = "a number"
    BOOLEAN = "true or false"
    MAPPING = "a mapping of fields"
    TEXT_MAP = "a mapping of names to strings"
    ANY = "any value"
    TEXT_OR_MAPPING = "a string or a mapping of fields"
    REFERENCE_OR_MAPPING = "a reference (azureml:NAME:VERSION) or a mapping of fields"


class Use(Enum):
    USED = "used"
    KEPT = "kept"
    IGNORED = "ignored"
    DROPPED = "dropped"  # read-only fields that `az ml show` prints and Azure drops without a word: so do we


@dataclass(frozen=True, slots=True)
class Field:
    kind: Kind
    use: Use = Use.USED
    children: Mapping[str, Field] = field(default_factory=dict)  # for MAPPING and TEXT_OR_MAPPING
    why: str = ""  # for ignored fields: why it means nothing here


def _used(kind: Kind, **children: Field) -> Field:
    return Field(kind, Use.USED, children)


def _ignored(kind: Kind, why: str = "") -> Field:
    return Field(kind, Use.IGNORED, why=why)


def _kept(kind: Kind) -> Field:
    return Field(kind, Use.KEPT)


def _dropped(kind: Kind) -> Field:
    return Field(kind, Use.DROPPED)


_TEXT, _INT, _NUMBER, _BOOL, _ANY = Kind.TEXT, Kind.INTEGER, Kind.NUMBER, Kind.BOOLEAN, Kind.ANY

# Read-only fields that `az ml ... show` prints and people paste back: Azure drops them silently.
_SERVER_SET = {
    name: _dropped(_ANY)
    for name in ("id", "provisioning_state", "creation_context", "latest_version", "utc_time_created")
}
_COMMON = {
    "$schema": _dropped(_TEXT),
    "name": _used(_TEXT),
    "description": _used(_TEXT),
    "tags": _used(Kind.TEXT_MAP),
    "properties": _kept(Kind.TEXT_MAP),
    **_SERVER_SET,
}

ENDPOINT: Mapping[str, Field] = {
    **_COMMON,
    "auth_mode": _used(_TEXT),
    "traffic": _used(Kind.TEXT_MAP),
    "mirror_traffic": _used(Kind.TEXT_MAP),
    "identity": _ignored(_ANY, "Azure managed identities"),
    "public_network_access": _ignored(_TEXT, "Azure networking; bind with `controlplane start --host`"),
    "location": _ignored(_TEXT, "an Azure region"),
    "kind": _dropped(_TEXT),
    "compute": _ignored(_TEXT, "a Kubernetes compute attached to Azure"),
    "scoring_uri": _dropped(_TEXT),
    "openapi_uri": _dropped(_TEXT),
    "swagger_uri": _dropped(_TEXT),
}

_PROBE = _used(
    Kind.MAPPING,
    initial_delay=_used(_INT),
    period=_used(_INT),
    timeout=_used(_INT),
    success_threshold=_used(_INT),
    failure_threshold=_used(_INT),
    method=_ignored(_TEXT, "custom containers only"),
    scheme=_ignored(_TEXT, "custom containers only"),
    path=_ignored(_TEXT, "custom containers only"),
    port=_ignored(_INT, "custom containers only"),
)
_RESOURCE_AMOUNTS = _used(
    Kind.MAPPING, cpu=_used(_TEXT), memory=_used(_TEXT), gpu=_used(_TEXT), **{"nvidia.com/gpu": _used(_TEXT)}
)

_MODEL_FIELDS: dict[str, Field] = {
    **_COMMON,
    "version": _used(_ANY),
    "path": _used(_TEXT),
    "type": _used(_TEXT),
    "stage": _kept(_TEXT),
    "flavors": _kept(_ANY),
    "job_name": _ignored(_TEXT, "Azure ML jobs"),
    "datastore": _ignored(_TEXT, "Azure storage"),
    "intellectual_property": _ignored(_ANY),
    "system_metadata": _ignored(_ANY),
    "default_deployment_template": _ignored(_ANY, "Azure ML registries"),
    "allowed_deployment_templates": _ignored(_ANY, "Azure ML registries"),
}
MODEL: Mapping[str, Field] = _MODEL_FIELDS

_INFERENCE_ROUTE = Field(
    Kind.MAPPING, Use.IGNORED, {"path": _used(_TEXT), "port": _used(_INT)}, "custom containers only"
)
_ENVIRONMENT_FIELDS: dict[str, Field] = {
    **_COMMON,
    "version": _used(_ANY),
    "conda_file": _used(Kind.TEXT_OR_MAPPING),  # the path of a conda YAML file, or one written inline
    "image": _used(_TEXT),
    "build": Field(
        Kind.MAPPING,
        Use.IGNORED,
        {"path": _used(_TEXT), "dockerfile_path": _used(_TEXT)},
        "scorehost builds no containers; give a conda_file",
    ),
    "os_type": _ignored(_TEXT, "the host's own OS runs it"),
    "inference_config": Field(
        Kind.MAPPING,
        Use.IGNORED,
        {"liveness_route": _INFERENCE_ROUTE, "readiness_route": _INFERENCE_ROUTE, "scoring_route": _INFERENCE_ROUTE},
        "custom containers only",
    ),
    "datastore": _ignored(_TEXT, "Azure storage"),
    "intellectual_property": _ignored(_ANY),
    "auto_delete_setting": _ignored(_ANY, "cached environments are removed by `scorehost environments prune`"),
}
ENVIRONMENT: Mapping[str, Field] = _ENVIRONMENT_FIELDS

DEPLOYMENT: Mapping[str, Field] = {
    **_COMMON,
    "type": _used(_TEXT),
    "endpoint_name": _used(_TEXT),
    "model": Field(Kind.REFERENCE_OR_MAPPING, Use.USED, _MODEL_FIELDS),
    "model_mount_path": _ignored(_TEXT, "AZUREML_MODEL_DIR is a folder of the server's own"),
    "code_configuration": _used(Kind.MAPPING, code=_used(_TEXT), scoring_script=_used(_TEXT)),
    "environment": Field(Kind.REFERENCE_OR_MAPPING, Use.USED, _ENVIRONMENT_FIELDS),
    "environment_variables": _used(Kind.TEXT_MAP),
    "instance_count": _used(_INT),
    # Used where it is a GPU size, for its GPUs per instance (azureml/deployment.py passes it as `used`)
    "instance_type": _ignored(_TEXT, "an Azure VM size; instances run on this machine"),
    "default_instance_type": _ignored(_TEXT, "an Azure VM size"),
    "app_insights_enabled": _used(_BOOL),
    "request_settings": _used(
        Kind.MAPPING,
        request_timeout_ms=_used(_INT),
        max_concurrent_requests_per_instance=_used(_INT),
        max_queue_wait_ms=_used(_INT),
    ),
    "liveness_probe": _PROBE,
    "readiness_probe": _PROBE,
    "scale_settings": _used(
        Kind.MAPPING,
        type=_used(_TEXT),
        min_instances=_used(_INT),
        max_instances=_used(_INT),
        polling_interval=_used(_INT),
        target_utilization_percentage=_used(_INT),
    ),
    "resources": _used(Kind.MAPPING, requests=_RESOURCE_AMOUNTS, limits=_RESOURCE_AMOUNTS),
    "data_collector": _used(
        Kind.MAPPING,
        collections=_used(Kind.MAPPING),  # names chosen by the script: azureml/collector.py checks each
        sampling_rate=_used(_TEXT),
        rolling_rate=_used(_TEXT),
        request_logging=_used(Kind.MAPPING, capture_headers=_used(_ANY)),
    ),
    "egress_public_network_access": _ignored(_TEXT, "Azure networking"),
    "private_network_connection": _ignored(_BOOL, "Azure networking"),
    "with_package": _ignored(_BOOL, "Azure's model packaging"),
    # scorehost's own settings (not Azure ML's: `az ml` refuses this field). follow_model: roll to the version a
    # model label (azureml:NAME@ALIAS, @latest) names whenever it moves.
    "scorehost": _used(Kind.MAPPING, follow_model=_used(_BOOL)),
    "code_path": _used(_TEXT),  # the v2 preview's spelling of code_configuration.code
    "scoring_script": _used(_TEXT),  # ... and of code_configuration.scoring_script
}


def _kind_ok(kind: Kind, value: Any) -> bool:
    if kind is Kind.TEXT:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if kind is Kind.INTEGER:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value) is not None
        )
    if kind is Kind.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is Kind.BOOLEAN:
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))
    if kind is Kind.MAPPING:
        return isinstance(value, dict)
    if kind is Kind.TEXT_MAP:
        return isinstance(value, dict) and all(
            isinstance(v, str | int | float | bool) or v is None for v in value.values()
        )
    if kind in (Kind.TEXT_OR_MAPPING, Kind.REFERENCE_OR_MAPPING):
        return isinstance(value, str | dict)
    return True


def check_document(
    document: Document, schema: Mapping[str, Field], what: str, *, used: Collection[FieldPath] = ()
) -> list[str]:
    """Refuse fields outside `schema` and values of the wrong kind (ProjectFileError naming each, with its line);
    return the warnings: one line listing the fields that have no meaning here. Fields in `used` are used in this
    file although the schema ignores them (an `instance_type` that names a GPU size)."""
    unknown: list[str] = []
    ignored: list[str] = []

    def walk(values: Mapping[str, Any], fields: Mapping[str, Field], at: FieldPath) -> None:
        for name, value in values.items():
            here = (*at, name)
            spec = fields.get(name)
            if spec is None:
                known = ", ".join(sorted(fields))
                unknown.append(
                    f"  {document.where(here)}: {dotted(here)}" + (f" (fields there: {known})" if at else "")
                )
                continue
            if value is None:
                continue  # `field:` with nothing after it: as if absent, as az ml reads it
            if not _kind_ok(spec.kind, value):
                raise document.error(here, f"{dotted(here)} must be {spec.kind.value}, not {value!r}")
            if spec.use is Use.DROPPED:
                continue
            if spec.use is Use.IGNORED and here not in used:
                ignored.append(f"{dotted(here)}" + (f" ({spec.why})" if spec.why else ""))
            elif isinstance(value, dict) and spec.children:
                walk(value, spec.children, here)

    walk(document.data, schema, ())
    if unknown:
        names = ", ".join(sorted(schema))
        raise document.error(
            (),
            f"{len(unknown)} field{'s' if len(unknown) > 1 else ''} not in Azure ML's {what} schema:\n"
            + "\n".join(unknown)
            + f"\nremove {'them' if len(unknown) > 1 else 'it'} or fix the spelling; the fields are: {names}",
        )
    if not ignored:
        return []
    return [f"{document.path.name}: ignored, no meaning outside Azure: {'; '.join(ignored)}"]
