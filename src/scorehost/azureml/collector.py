"""A deployment's `data_collector` as the `scorehost serve` settings that collect the same data.

    data_collector:
      collections:
        model_inputs: {enabled: 'True'}
        request: {enabled: 'True', sampling_rate: 0.5}
      sampling_rate: 0.25
      rolling_rate: Hour
      request_logging: {capture_headers: [x-client-id]}

Each enabled collection is written under the workspace (`scorehost deployments data`); `data` (the Azure data
asset to register) and `client_id` have no meaning here and are named in one warning.
"""

from __future__ import annotations

from typing import Any

from scorehost.azureml.document import Document, FieldPath, dotted
from scorehost.azureml.values import boolean, choice, text

__all__ = ["collection_options"]

_ROLLING_RATES = ("Minute", "Hour", "Day", "Month", "Year")
_COLLECTION_FIELDS = ("enabled", "sampling_rate", "data", "client_id")
# Names Azure's schema lets one write and that mean nothing off Azure.
_AZURE_ONLY = ("data", "client_id")


def collection_options(document: Document, warnings: list[str]) -> dict[str, Any]:
    """The serve options (`collect`, `collect_sampling_rate`, ...) of the file's `data_collector`; empty when it
    has none, or turns every collection off."""
    declared = document.data.get("data_collector")
    if not declared:
        return {}
    at: FieldPath = ("data_collector",)
    collections = declared.get("collections") or {}
    if not isinstance(collections, dict):
        raise document.error((*at, "collections"), "data_collector.collections must map collection names to settings")
    names: list[str] = []
    azure_only: list[str] = []
    for name, settings in collections.items():
        here = (*at, "collections", str(name))
        settings = settings or {}
        if not isinstance(settings, dict):
            raise document.error(here, f"{dotted(here)} must be a mapping, e.g. {{enabled: 'True'}}")
        unknown = sorted(set(settings) - set(_COLLECTION_FIELDS))
        if unknown:
            raise document.error(
                (*here, unknown[0]),
                f"{dotted((*here, unknown[0]))} is not a collection setting; the settings are: "
                + ", ".join(_COLLECTION_FIELDS),
            )
        azure_only += [dotted((*here, key)) for key in _AZURE_ONLY if settings.get(key) is not None]
        if not boolean(settings.get("enabled", False)):
            continue
        rate = settings.get("sampling_rate")
        names.append(str(name) if rate is None else f"{name}={_rate(document, (*here, 'sampling_rate'), rate)}")
    if azure_only:
        warnings.append(
            f"{document.path.name}: ignored, no meaning outside Azure: {', '.join(azure_only)} (collected rows land "
            "in the workspace: `scorehost deployments data`)"
        )
    if not names:
        return {}
    options: dict[str, Any] = {"collect": names}
    if declared.get("sampling_rate") is not None:
        options["collect_sampling_rate"] = _rate(document, (*at, "sampling_rate"), declared["sampling_rate"])
    if declared.get("rolling_rate") is not None:
        options["collect_rolling_rate"] = choice(
            document, (*at, "rolling_rate"), declared["rolling_rate"], _ROLLING_RATES
        )
    logging = declared.get("request_logging") or {}
    headers = logging.get("capture_headers") if isinstance(logging, dict) else None
    if headers:
        where = (*at, "request_logging", "capture_headers")
        if not isinstance(headers, list) or not all(isinstance(header, str) and header for header in headers):
            raise document.error(where, f"{dotted(where)} must be a list of header names")
        options["collect_headers"] = list(headers)
    return options


def _rate(document: Document, at: FieldPath, value: Any) -> float:
    try:
        rate = float(text(value))
    except ValueError:
        rate = -1.0
    if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
        raise document.error(at, f"{dotted(at)} must be a number from 0 to 1 (the share collected), not {value!r}")
    return rate
