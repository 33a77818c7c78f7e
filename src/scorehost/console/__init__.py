"""The web console: the control plane's endpoints, deployments and models in a browser (docs/console.md)."""

from scorehost.console.app import ConsoleApp, mount

__all__ = ["ConsoleApp", "mount"]
