"""Hydra callback that writes the sweep report when a multirun ends.

Register it in the Hydra config::

    hydra:
      callbacks:
        report:
          _target_: eebench.hydra_callback.ReportCallback

Every job's results are already on disk when this runs: a report that fails (a full disk, a renderer's
failure) is one error line naming it and the command that writes it again (``eebench report <sweep dir>``),
and the multirun exits with status 1, as a sweep with failed points does after its report, naming them.
A failed W&B summary only warns (the report is written). An unwritable output folder is refused before any job.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from eebench.logs import log
from eebench.reporting.report import PARETO_FILE, SUMMARY_FILE, write_report


def _failure_line(step: str, sweep_dir: Any, exc: BaseException) -> str:
    return f"sweep {step} failed ({type(exc).__name__}: {exc}); results are on disk, retry with: eebench report {sweep_dir}"


def _log_to_wandb(config: DictConfig, sweep_dir: Path) -> None:
    from eebench.tracking.wandb_sink import log_sweep_summary  # wandb import only when asked for

    log_sweep_summary(
        sweep_dir,
        pd.read_csv(sweep_dir / SUMMARY_FILE),
        pd.read_csv(sweep_dir / PARETO_FILE),
        project=OmegaConf.select(config, "logger.project", default="eebench"),
        mode=OmegaConf.select(config, "logger.mode", default="offline"),
        entity=OmegaConf.select(config, "logger.entity", default=None),
    )


def _require_writable(config: DictConfig, key: str) -> None:
    """An unwritable output folder is one line naming the key, before Hydra fails on it with a traceback."""
    from eebench.errors import EEBenchError
    from eebench.pipeline import check_writable

    try:
        check_writable(Path(str(OmegaConf.select(config, key))), key)
    except EEBenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def failed_points(sweep_dir: Path, since: float = 0.0) -> list[tuple[Path, str]]:
    """(run dir, first line of its error) for every point of the sweep that failed at or after ``since``
    (the launch's start: points an earlier launch left failed are in the report, not this exit code)."""
    from eebench.tracking.results import ERROR_FILE, check_run, find_run_dirs

    return [
        (run, check_run(run)[1] or "failed")
        for run in find_run_dirs(sweep_dir)
        if (run / ERROR_FILE).exists() and (run / ERROR_FILE).stat().st_mtime >= since
    ]


def _said_failed_points(sweep_dir: Path, since: float) -> bool:
    """Name this launch's failed points in one error line; whether there were any."""
    failed = failed_points(sweep_dir, since)
    if failed:
        named = "; ".join(f"{run.name} ({reason})" for run, reason in failed)
        print(f"error: {len(failed)} point(s) of {sweep_dir} failed: {named}", file=sys.stderr, flush=True)
    return bool(failed)


class ReportCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _require_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1  # error.json times of this launch's points; 1 s for coarse file clocks
        _require_writable(config, "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir", default=None)))
        reported = self._report(config, sweep_dir)
        # After the report: CI and schedulers must notice a failed point, and a missing report.
        if _said_failed_points(sweep_dir, getattr(self, "started", 0.0)) or not reported:
            sys.exit(1)

    def _report(self, config: DictConfig, sweep_dir: Path) -> bool:
        """Write the report (then the W&B summary); whether the report was written."""
        try:
            report = write_report([sweep_dir], sweep_dir)
            log.info("eebench: sweep report written to %s", report)
        except Exception as exc:  # noqa: BLE001 - the failed points are still named before the exit
            log.error("error: %s", _failure_line("report", sweep_dir, exc))
            return False
        if OmegaConf.select(config, "logger.kind", default=None) == "wandb":
            try:
                _log_to_wandb(config, sweep_dir)
            except Exception as exc:  # noqa: BLE001 - the report is written; the summary can be logged later
                log.warning("warning: %s", _failure_line("W&B summary", sweep_dir, exc))
        return True
