"""Typed reads of checked fields: Azure ML's schemas take `"2"` for 2 and `'True'` for true, and so do we."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from scorehost.azureml.document import Document, FieldPath, dotted
from scorehost.private_files import write_private

__all__ = ["boolean", "choice", "conda_file", "integer", "text", "text_map"]


def text(value: Any) -> str:
    return "" if value is None else str(value)


def integer(document: Document, at: FieldPath, value: Any, low: int, high: int) -> int:
    written = str(value).strip()
    if not re.fullmatch(r"-?[0-9]+", written):  # ASCII digits: "²".isdigit() is true, int("²") is not
        raise document.error(at, f"{dotted(at)} must be a whole number, not {value!r}")
    number = int(written)
    if not low <= number <= high:
        raise document.error(at, f"{dotted(at)} must be between {low} and {high}, not {number}")
    return number


def boolean(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def text_map(value: Any) -> dict[str, str]:
    """Tags and variables: YAML may hold numbers or booleans there; Azure stores their text."""
    if not value:
        return {}
    return {str(k): ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


def choice(document: Document, at: FieldPath, value: Any, allowed: Iterable[str]) -> str:
    """One of `allowed` (snake_case), written as Azure accepts it: `aml_token`, `AMLToken` or `AmlToken`."""
    options = list(allowed)
    folded = {option.replace("_", "").lower(): option for option in options}
    found = folded.get(text(value).replace("_", "").lower())
    if found is None:
        raise document.error(at, f"{dotted(at)} must be one of {', '.join(options)}, not {value!r}")
    return found


def conda_file(document: Document, at: FieldPath, value: Any) -> Path:
    """The conda file a `conda_file:` names, relative to the YAML's folder; one written inline (a mapping, as Azure's
    SDK accepts) is saved, by its digest, to a private folder of the temporary directory and read from there."""
    if isinstance(value, dict):
        written = yaml.safe_dump(value, sort_keys=False).encode()
        folder = Path(tempfile.gettempdir()) / f"scorehost-{os.getuid()}" / "conda"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{document.path.stem}-{hashlib.sha256(written).hexdigest()[:16]}.yml"
        write_private(path, written)
        return path
    if not isinstance(value, str):
        raise document.error(
            at, f"{dotted(at)} must be the path of a conda YAML file, or the conda file written inline"
        )
    path = (document.folder / value).resolve()
    if not path.is_file():
        raise document.error(at, f"the conda file {path} does not exist")
    return path
