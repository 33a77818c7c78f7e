"""What the scoring server and the gateway both tell operators: logs, trace context, spans, request ids and
Prometheus' multiprocess plumbing. Nothing here knows HTTP routes or the entry-script contract."""
