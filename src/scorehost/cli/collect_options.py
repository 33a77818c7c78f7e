"""`deployments create/update --collect ...`: data collection for a deployment declared with flags (a YAML file
says it with `data_collector`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

__all__ = ["collect_options", "collection_changes", "merged_serve_options", "retention_changes"]

F = TypeVar("F", bound=Callable[..., Any])
_NAMES = ("collect", "collect_sampling_rate", "collect_headers", "no_collect")
_RETENTION = ("collect_max_age", "collect_max_size")


def collect_options(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--collect",
                metavar="NAME[=RATE]",
                multiple=True,
                help="Collect data (docs/data-collection.md): request, response, or a collection the script's "
                "Collector names, with its own sampling rate; repeatable. Read it with `deployments data`.",
            ),
            click.option(
                "--collect-sampling-rate", type=click.FloatRange(0, 1), help="The share of requests collected."
            ),
            click.option(
                "--collect-header",
                "collect_headers",
                multiple=True,
                metavar="NAME",
                help="A header written with the payloads (repeatable); never credentials.",
            ),
            click.option("--no-collect", is_flag=True, help="Stop collecting (update)."),
            click.option(
                "--collect-max-age",
                metavar="AGE",
                help="Delete collected files older than AGE, e.g. 7d; 0 keeps them (with -f too).  [default: 30d]",
            ),
            click.option(
                "--collect-max-size",
                metavar="SIZE",
                help="Delete the oldest collected files past SIZE, e.g. 20GiB; 0 = no cap (with -f too).  "
                "[default: 5GiB]",
            ),
        ]
    ):
        command = option(command)
    return command


def collection_changes(options: dict[str, Any]) -> dict[str, Any] | None:
    """Take the collection flags out of `options`; the serve options they set ({} with --no-collect), or None
    when none was given."""
    given = {name: options.pop(name) for name in _NAMES}
    if given["no_collect"]:
        if given["collect"] or given["collect_headers"] or given["collect_sampling_rate"] is not None:
            raise click.UsageError(
                "--no-collect cannot be combined with --collect, --collect-header or --collect-sampling-rate"
            )
        return {}
    if not given["collect"]:
        if given["collect_headers"] or given["collect_sampling_rate"] is not None:
            raise click.UsageError("name the collections to write with --collect (e.g. --collect request)")
        return None
    changes: dict[str, Any] = {"collect": list(given["collect"])}
    if given["collect_sampling_rate"] is not None:
        changes["collect_sampling_rate"] = given["collect_sampling_rate"]
    if given["collect_headers"]:
        changes["collect_headers"] = list(given["collect_headers"])
    return changes


def retention_changes(options: dict[str, Any]) -> dict[str, Any]:
    """Take the retention flags out of `options`: the serve options they set (a YAML file has no such field, so
    they go with -f too)."""
    return {name: value for name in _RETENTION if (value := options.pop(name)) is not None}


def merged_serve_options(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The deployment's serve options with its data collection replaced by `changes` (the rest kept)."""
    kept = {key: value for key, value in current.items() if not key.replace("-", "_").startswith("collect")}
    return {**kept, **changes}
