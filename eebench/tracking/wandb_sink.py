"""Optional Weights & Biases logging that can never cost results.

Results are written to disk before anything here runs; every wandb call is guarded so that a
missing login, no network, a broken install or an API change prints one warning line and the job
carries on. Offline is the default; W&B files live in ``<sweep_dir>/wandb`` for a later `wandb sync`.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from eebench.analysis.pareto import run_to_row, task_accuracies
from eebench.tracking.results import redact, write_json_atomic

# Flat per-run metrics worth a W&B summary (and parallel-coordinates plot across a sweep).
SUMMARY_KEYS = (
    "threshold", "agreement", "mean_layers", "theoretical_speedup", "depth_speedup",
    "measured_speedup", "full_tokens_per_s", "early_exit_tokens_per_s",
    "mean_acc", "mean_baseline_acc", "acc_delta",
)
POINTER_FILE = "wandb_run.json"  # in the run dir: which W&B run holds this job's logs


def _resolve_mode(mode: str | None) -> str:
    # A WANDB_MODE the user exported wins over the config, matching how wandb users expect it to work.
    return os.environ.get("WANDB_MODE") or mode or "offline"


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary_metrics(results: dict) -> dict[str, float]:
    """Flat numeric metrics: speed, agreement, and each task's accuracy, baseline and delta (points)."""
    row = run_to_row(results)
    metrics = {key: float(row[key]) for key in SUMMARY_KEYS if _is_finite_number(row.get(key))}
    for task, (early, full) in task_accuracies(results).items():
        candidates = {f"acc/{task}": early, f"baseline_acc/{task}": full,
                      f"acc_delta/{task}": (early - full) * 100}
        metrics.update({k: v for k, v in candidates.items() if _is_finite_number(v)})
    for column, share in row.items():
        if column.startswith("exit:") and _is_finite_number(share):
            metrics[f"exit_fraction/{column.split(':', 1)[1]}"] = share
    return metrics


def frame_to_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Columns and plain-Python rows (NaN -> None) that wandb.Table accepts across pandas versions."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [str(c) for c in frame.columns], plain.values.tolist()


class WandbSink:
    """One W&B run per job; ``enabled=False`` or any wandb failure turns every method into a no-op."""

    def __init__(self, enabled: bool, project: str, mode: str, entity: str | None, run_dir: Path,
                 sweep_dir: Path, group: str, name: str, config: dict, job_type: str | None = None):
        self.run_dir, self.sweep_dir = Path(run_dir), Path(sweep_dir)
        self._wandb = None
        self._run = None
        if enabled:
            self._run = self._guarded(
                "init", self._start, project, mode, entity, group, name, config, job_type)

    @property
    def active(self) -> bool:
        return self._run is not None

    def _warn(self, action: str, exc: BaseException) -> None:
        message = (str(exc).strip().splitlines() or [""])[0][:200]
        print(
            f"warning: W&B {action} failed ({type(exc).__name__}: {message}); results are on disk. "
            f"Sync later with: wandb sync {self.sweep_dir / 'wandb'}/offline-run-*",
            file=sys.stderr, flush=True,
        )

    def _guarded(self, action: str, function: Callable, *args) -> Any:
        try:
            return function(*args)
        except Exception as exc:  # noqa: BLE001 - by design: W&B must never cost results
            self._warn(action, exc)
            return None

    def _settings(self):
        # No console capture (it wraps stdout) and no system-stats sampling thread, which would
        # compete with the timing benchmark for CPU; older wandb may lack the private field.
        try:
            return self._wandb.Settings(console="off", x_disable_stats=True)
        except Exception:  # noqa: BLE001
            return self._wandb.Settings(console="off")

    def _start(self, project, mode, entity, group, name, config, job_type):
        import wandb

        self._wandb = wandb
        # wandb.init(dir=X) writes into X/wandb, so passing the sweep dir yields <sweep_dir>/wandb.
        (self.sweep_dir / "wandb").mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=project, entity=entity, mode=_resolve_mode(mode), dir=str(self.sweep_dir),
            group=group, name=name, job_type=job_type,
            config=redact({**(config or {}), "run_dir": str(self.run_dir)}),
            reinit="finish_previous", settings=self._settings(),
        )
        self._guarded("pointer file", self._write_pointer, run, _resolve_mode(mode))
        return run

    def _write_pointer(self, run, mode: str) -> None:
        write_json_atomic(self.run_dir / POINTER_FILE, {
            "id": run.id, "name": run.name, "project": run.project, "mode": mode,
            "wandb_dir": str(self.sweep_dir / "wandb"),
        })

    def _table(self, columns: list[str], rows: list[list[Any]]):
        return self._wandb.Table(columns=columns, data=rows)

    def _log_results(self, results: dict) -> None:
        self._run.summary.update(summary_metrics(results))
        task_rows = [[task, early, full, (early - full) * 100]
                     for task, (early, full) in task_accuracies(results).items()]
        fractions = ((results.get("exit") or {}).get("fraction") or {}).items()
        self._run.log({
            "tasks": self._table(["task", "acc", "baseline_acc", "delta_points"], task_rows),
            "exit_histogram": self._table(["exit", "fraction"], [[str(k), v] for k, v in fractions]),
        })

    def log_results(self, results: dict) -> None:
        if self.active:
            self._guarded("log_results", self._log_results, results)

    def _log_frames(self, frames: dict[str, pd.DataFrame]) -> None:
        self._run.log({key: self._table(*frame_to_rows(frame)) for key, frame in frames.items()})

    def log_frames(self, frames: dict[str, pd.DataFrame]) -> None:
        """Log DataFrames as W&B tables, keyed by name."""
        if self.active:
            self._guarded("log tables", self._log_frames, frames)

    def finish(self) -> None:
        """Close this run so the next job in a multirun process gets its own run."""
        if self.active:
            self._guarded("finish", self._run.finish)
            self._run = None


def log_sweep_summary(sweep_dir: Path, summary_df: pd.DataFrame, pareto_df: pd.DataFrame,
                      project: str, mode: str, entity: str | None = None) -> None:
    """One sweep-level W&B run holding the summary and Pareto tables; never raises."""
    sweep_dir = Path(sweep_dir)
    try:
        sink = WandbSink(True, project, mode, entity, run_dir=sweep_dir, sweep_dir=sweep_dir,
                         group=sweep_dir.name, name=f"{sweep_dir.name}-summary",
                         config={"sweep_dir": str(sweep_dir), "points": len(summary_df)},
                         job_type="sweep-summary")
        sink.log_frames({"summary": summary_df, "pareto": pareto_df})
        sink.finish()
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed frame; the report is already on disk
        print(f"warning: W&B sweep summary failed ({type(exc).__name__}: {exc}); report files are on disk.",
              file=sys.stderr, flush=True)
