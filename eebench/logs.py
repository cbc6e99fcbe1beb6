"""eebench's logger: messages to the terminal (stderr) and, during a job, to <run_dir>/run.log.

Progress bars (tqdm) stay on the terminal; everything else eebench says goes through ``log``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_FILE = "run.log"
log = logging.getLogger("eebench")


class _Console(logging.StreamHandler):
    """Information to stdout, warnings and errors to stderr, as the streams are at the time of each
    message (test capture and redirection keep working)."""

    _target = None

    @property
    def stream(self):
        return self._target or sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        self._target = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        super().emit(record)


def _ensure_console() -> None:
    if not any(isinstance(h, _Console) for h in log.handlers):
        console = _Console()
        console.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(console)
        log.setLevel(logging.INFO)


_ensure_console()


def log_to_file(run_dir: Path) -> logging.Handler:
    """Also write eebench's log lines, timestamped, to <run_dir>/run.log; the caller removes the handler."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    return handler


def stop_logging_to(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Log a stage's start and its wall time, so run.log says where a point spent its time (or where it died)."""
    log.info("eebench: %s ...", name)
    started = time.perf_counter()
    yield
    log.info("eebench: %s done in %.1f s", name, time.perf_counter() - started)
