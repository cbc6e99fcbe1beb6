"""SIGTERM (a scheduler's stop, a job's time limit) and SIGINT (Ctrl-C) end a point the way a failure does.

Within ``signals_as_exceptions`` either signal raises ``Interrupted``, so every ``finally`` and cleanup on the way
out runs (the cache's temp folders of a half-built entry, temp files of half-written results) before the caller
records it and exits with the conventional status 128 + the signal's number. Nothing of the point is marked done,
so its relaunch runs it again and reuses what the cache already holds.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A handled signal arrived. A BaseException, as KeyboardInterrupt is: ``except Exception`` never swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Interrupted`` within the block; the previous handlers come back after it, so a
    second signal during the cleanup that follows acts as it would have (Python lets only the main thread
    handle signals: elsewhere the block changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
