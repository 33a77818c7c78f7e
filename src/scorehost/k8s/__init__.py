"""Kubernetes manifests for an entry script served by `scorehost serve` in a container image."""

from scorehost.k8s.manifests import KubernetesApp

__all__ = ["KubernetesApp"]
