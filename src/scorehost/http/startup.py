"""Load the entry script and run `init()` within its budget: in the supervisor (`--preload`) or a worker."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable

from scorehost.config import ServeSettings
from scorehost.host.entry import EntryScript, load_entry_script

__all__ = ["load_and_init", "within_init_timeout"]


def load_and_init(settings: ServeSettings, *, per_worker: bool = True) -> EntryScript:
    """Import the script and call `init()` on this (main) thread, then, unless `per_worker` is False (the supervisor
    preloading), its `init_worker()`; past `init_timeout` it raises InitFailed."""
    assert settings.entry_script is not None
    script = load_entry_script(settings.entry_script, settings.run_input)
    within_init_timeout(settings, script.init)
    if per_worker:
        within_init_timeout(settings, script.init_worker)
    # What exists now lives as long as the process: the collector need not walk it again, and after
    # --preload it leaves those pages shared with the forked workers instead of copying them.
    gc.freeze()
    return script


def within_init_timeout(settings: ServeSettings, step: Callable[[], None]) -> None:
    """Run `step` on this thread, interrupted with TimeoutError past `--init-timeout` (on the main thread only)."""

    name = getattr(step, "__name__", "init")

    def out_of_time(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"{name}() did not finish within {settings.init_timeout:.0f} s (--init-timeout)")

    if threading.current_thread() is not threading.main_thread():
        # Signals reach only the main thread; a host started elsewhere (a Ray Serve replica) has its own
        # start-up deadline to rely on.
        step()
        return
    previous = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, settings.init_timeout)
    try:
        step()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
