"""Hydra callback that writes the sweep report when a multirun ends.

Register it in the Hydra config::

    hydra:
      callbacks:
        report:
          _target_: eebench.hydra_callback.ReportCallback

Every job's results are already on disk when this runs, so a failure here only prints a warning
(the report can be regenerated with ``eebench report <sweep dir>``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from eebench.logs import log
from eebench.reporting.report import PARETO_FILE, SUMMARY_FILE, write_report


def _warn(step: str, sweep_dir: Any, exc: BaseException) -> None:
    log.warning("warning: sweep %s failed (%s: %s); results are on disk, retry with: eebench report %s",
                step, type(exc).__name__, exc, sweep_dir)


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


class ReportCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir", default=None)
        try:
            sweep_dir = Path(sweep_dir)
            report = write_report([sweep_dir], sweep_dir)
            log.info("eebench: sweep report written to %s", report)
        except Exception as exc:  # noqa: BLE001 - never fail a finished sweep over its report
            _warn("report", sweep_dir, exc)
            return
        if OmegaConf.select(config, "logger.kind", default=None) == "wandb":
            try:
                _log_to_wandb(config, sweep_dir)
            except Exception as exc:  # noqa: BLE001
                _warn("W&B summary", sweep_dir, exc)
