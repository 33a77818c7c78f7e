"""Endpoints and deployments: stable scoring URIs with keys, traffic split, supervised backends."""
