"""The entry-script host: load score.py, call init() and run(). Free of HTTP so any transport can use it."""

from __future__ import annotations

from scorehost.host.entry import EntryScript, load_entry_script
from scorehost.host.run_input import RunInput, RunInputDecision, RunInputRule

__all__ = ["EntryScript", "RunInput", "RunInputDecision", "RunInputRule", "load_entry_script"]
