"""Adaptive batching: requests of a script with run_batch() grouped into calls, from threads or an event loop."""
