"""Backends run deployment generations for the control plane; `Backend` is all the control plane sees."""

from __future__ import annotations

from scorehost.deploy.backends.base import (
    Backend,
    DeploymentRecord,
    DeploymentStatus,
    Handle,
    InstanceState,
    InstanceStatus,
)
from scorehost.deploy.backends.local import Backoff, LocalBackend, LogSettings

__all__ = [
    "Backend",
    "Backoff",
    "DeploymentRecord",
    "DeploymentStatus",
    "Handle",
    "InstanceState",
    "InstanceStatus",
    "LocalBackend",
    "LogSettings",
]
