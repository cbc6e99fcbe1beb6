"""Fault injection for crash-safety tests: ``EEBENCH_KILL_AT=<stage>`` makes the process SIGKILL itself
when it reaches that stage, at most ``EEBENCH_KILL_BUDGET`` times in all (counted in ``EEBENCH_KILL_COUNTER``,
a file shared by parallel workers). Unset in normal use: then ``checkpoint`` does nothing."""
from __future__ import annotations

import os
import signal
from pathlib import Path

STAGES = ("heads", "traces", "eval", "timing", "write")


def checkpoint(stage: str) -> None:
    if os.environ.get("EEBENCH_KILL_AT") != stage:
        return
    counter = Path(os.environ.get("EEBENCH_KILL_COUNTER", "/tmp/eebench-kill-counter"))
    budget = int(os.environ.get("EEBENCH_KILL_BUDGET", "1"))
    from filelock import FileLock

    with FileLock(str(counter) + ".lock"):
        used = int(counter.read_text()) if counter.exists() else 0
        if used >= budget:
            return
        counter.write_text(str(used + 1))
    os.kill(os.getpid(), signal.SIGKILL)
