"""Fault injection for crash-safety tests: ``EEBENCH_KILL_AT=<name>`` makes the process SIGKILL itself when it
reaches the kill point of that name (``EEBENCH_KILL_SIGNAL=TERM``, ``INT``, ...: that signal instead, as a
scheduler or Ctrl-C sends it). ``EEBENCH_KILL_AFTER=n`` lets the first n arrivals pass, ``EEBENCH_KILL_BUDGET``
caps the kills; both are counted in ``EEBENCH_KILL_COUNTER``, a JSON file shared by parallel workers.
Unset in normal use: then ``kill_point`` does nothing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

KILL_POINTS = ("heads", "eval", "timing", "write")


def kill_point(name: str) -> None:
    """Where a crash test may kill the process (``name``: one of ``KILL_POINTS``)."""
    if name not in KILL_POINTS:
        raise ValueError(f"kill point {name!r} is unknown; allowed: {', '.join(KILL_POINTS)}")
    if os.environ.get("EEBENCH_KILL_AT") != name:
        return
    from filelock import FileLock

    counter = Path(os.environ.get("EEBENCH_KILL_COUNTER", "/tmp/eebench-kill-counter"))
    budget = int(os.environ.get("EEBENCH_KILL_BUDGET", "1"))
    after = int(os.environ.get("EEBENCH_KILL_AFTER", "0"))
    with FileLock(str(counter) + ".lock"):
        state = json.loads(counter.read_text()) if counter.exists() else {"arrivals": 0, "kills": 0}
        state["arrivals"] += 1
        kill = state["arrivals"] > after and state["kills"] < budget
        state["kills"] += int(kill)
        counter.write_text(json.dumps(state))
    if kill:
        os.kill(os.getpid(), signal.Signals[f"SIG{os.environ.get('EEBENCH_KILL_SIGNAL', 'KILL')}"])
