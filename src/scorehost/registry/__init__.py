"""The model registry: versions, aliases, content-addressed files, and serving layouts."""

from __future__ import annotations

from scorehost.registry.names import ModelRef, parse_ref
from scorehost.registry.records import (
    DeleteResult,
    GarbageReport,
    ModelSummary,
    ModelVersion,
    StoredFile,
    TransferProgress,
    VerifyProblem,
    VerifyReport,
)
from scorehost.registry.registry import Registry

__all__ = [
    "DeleteResult",
    "GarbageReport",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "StoredFile",
    "TransferProgress",
    "VerifyProblem",
    "VerifyReport",
    "parse_ref",
]
