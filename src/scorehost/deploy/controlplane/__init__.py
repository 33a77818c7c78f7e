"""The control plane: the REST API, the controller that makes running deployments match the declared state."""
