"""Running entry scripts on a Ray Serve cluster: the replica host and the Serve application (an extra:
`pip install 'scorehost[ray]'`)."""
