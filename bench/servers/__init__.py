"""Bare servers for the benchmark: the same model call as the entry script, with no framework around it.

Started by ``bench/run.py`` with ``bench/`` on ``PYTHONPATH``, e.g. ``granian servers.rsgi_app:app``.
"""
