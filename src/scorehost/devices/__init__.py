"""GPUs: finding them, giving each worker its own, and what must not happen to CUDA before a fork."""
