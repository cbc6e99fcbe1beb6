"""Optional Weights & Biases logging that can never cost results.

Results are written to disk before anything here runs; every wandb call is guarded so that a
missing login, no network, a broken install or an API change prints one warning line and the job
carries on. Offline is the default; W&B files live in ``<sweep_dir>/wandb`` for a later `wandb sync`.

Per job: summary metrics, tables (per-task accuracy with stderr, exit histogram with a bar chart), the
job's ``results.json`` as a run file (so `eebench report` can rebuild the point from W&B alone) and,
when the results name them, the trained heads and the calibration trace as artifacts. Per sweep:
the summary/Pareto/hypervolume tables, Pareto scatter plots and the report files as an artifact.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from eebench.analysis.pareto import (
    EXIT_NUMBERS,
    SPEEDUP_COLUMNS,
    WORKLOAD_NUMBERS,
    WORKLOADS,
    run_to_row,
)
from eebench.analysis.task_scores import as_result, task_accuracies, task_scores
from eebench.logs import log
from eebench.tracking.contract import RunResult
from eebench.tracking.results import RESULTS_FILE, redact, write_json_atomic

# Flat per-run metrics worth a W&B summary (and parallel-coordinates plot across a sweep): a selection of the
# summary.csv columns, named by the lists that define those columns.
SUMMARY_KEYS = (
    "threshold",
    *EXIT_NUMBERS,
    "measured_speedup",
    "decode_speedup",
    *(f"{workload}_{key}" for workload in WORKLOADS for key in WORKLOAD_NUMBERS),
    "mean_acc",
    "mean_baseline_acc",
    "acc_delta",
)
POINTER_FILE = "wandb_run.json"  # in the run dir: which W&B run holds this job's logs (and "logged": true once done)
# W&B's own staging copies, artifact cache and downloads go inside <sweep>/wandb unless the user chose
# other places: a sweep directory stays self-contained and nothing piles up in ~/.local/share/wandb.
WANDB_FILE_DIRS = {"WANDB_DATA_DIR": ".data", "WANDB_CACHE_DIR": ".cache", "WANDB_ARTIFACT_DIR": ".artifacts"}
_USER_SET_DIRS = frozenset(var for var in WANDB_FILE_DIRS if var in os.environ)
# Files bigger than this (e.g. a large model's head weights) stay in the local cache, named in the
# artifact's metadata instead, so a sweep does not upload gigabytes per job.
MAX_ARTIFACT_FILE_BYTES = 100 * 2**20
# Sweep-level report files worth keeping next to the W&B run, when they exist.
REPORT_FILES = ("report.md", "report.html", "report.pdf", "summary.csv", "pareto.csv", "hypervolume.csv")
HYPERVOLUME_FILE = "hypervolume.csv"


def _resolve_mode(mode: str | None) -> str:
    # A WANDB_MODE the user exported wins over the config, matching how wandb users expect it to work.
    return os.environ.get("WANDB_MODE") or mode or "offline"


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary_metrics(results: RunResult | dict) -> dict[str, float]:
    """Flat numeric metrics: speed, agreement, and each task's accuracy, baseline and delta (points)."""
    row = run_to_row(results)
    metrics = {key: float(row[key]) for key in SUMMARY_KEYS if _is_finite_number(row.get(key))}
    for task, (early, full) in task_accuracies(results).items():
        candidates = {f"acc/{task}": early, f"baseline_acc/{task}": full, f"acc_delta/{task}": (early - full) * 100}
        metrics.update({k: v for k, v in candidates.items() if _is_finite_number(v)})
    for column, share in row.items():
        if column.startswith("exit:") and _is_finite_number(share):
            metrics[f"exit_fraction/{column.split(':', 1)[1]}"] = share
    return metrics


TRAINING_COLUMNS = ["curve", "module", "exit_layer", "tokens", "train", "heldout", "coverage", "agreement"]


def training_rows(results: RunResult) -> list[list[Any]]:
    """One row per evaluation of each head and gate: loss vs tokens, and the heads' exit probe (None for gates)."""
    rows = []
    for curve in results.heads_training.curves:
        for i, tokens in enumerate(curve.tokens):
            probe = [(values[i] if values else None) for values in (curve.coverage, curve.agreement)]
            name = f"{curve.module} block {curve.exit_layer}"
            rows.append([name, curve.module, curve.exit_layer, tokens, curve.train[i], curve.heldout[i], *probe])
    return rows


def artifact_files(folder: str | Path | None) -> tuple[list[Path], list[str]]:
    """(files to log, names left out as too big) directly inside ``folder``; empty if it is missing."""
    folder = Path(folder) if folder else None
    if folder is None or not folder.is_dir():
        return [], []
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    small = [p for p in files if p.stat().st_size <= MAX_ARTIFACT_FILE_BYTES]
    return small, [p.name for p in files if p not in small]


def artifact_name(kind: str, folder: str | Path) -> str:
    # Cache folders are named by a content hash, so equal heads/traces map to one artifact name and
    # W&B deduplicates identical versions. Names allow only letters, digits, - _ and '.'.
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{kind}-{Path(folder).name}")


def keep_wandb_files_in(folder: Path) -> None:
    for var, sub in WANDB_FILE_DIRS.items():
        if var not in _USER_SET_DIRS:
            os.environ[var] = str(Path(folder) / sub)


def is_logged(run_dir: Path) -> bool:
    """Whether this run dir's results reached W&B (or its offline files) completely."""
    try:
        return json.loads((Path(run_dir) / POINTER_FILE).read_text()).get("logged") is True
    except (OSError, ValueError, AttributeError):
        return False


def frame_to_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Columns and plain-Python rows (NaN -> None) that wandb.Table accepts across pandas versions."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [str(c) for c in frame.columns], plain.values.tolist()


class WandbSink:
    """One W&B run per job; ``enabled=False`` or any wandb failure turns every method into a no-op."""

    def __init__(
        self,
        enabled: bool,
        project: str,
        mode: str,
        entity: str | None,
        run_dir: Path,
        sweep_dir: Path,
        group: str,
        name: str,
        config: dict,
        job_type: str | None = None,
    ):
        self.run_dir, self.sweep_dir = Path(run_dir), Path(sweep_dir)
        self._wandb = None
        self._run = None
        self.failures = 0
        if enabled:
            self._run = self._guarded("init", self._start, project, mode, entity, group, name, config, job_type)

    @property
    def active(self) -> bool:
        return self._run is not None

    def _warn(self, action: str, exc: BaseException) -> None:
        self.failures += 1
        message = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning(
            "warning: W&B %s failed (%s: %s); results are on disk. %s", action, type(exc).__name__, message, self._sync_hint()
        )

    def _sync_hint(self) -> str:
        """Name only folders that exist: this run's own W&B folder, else the sweep's offline runs, else none."""
        try:
            own = Path(self._run.dir).parent if self._run is not None else None
        except Exception:  # noqa: BLE001 - a half-initialised run
            own = None
        if own is not None and own.is_dir():
            return f"Sync later with: wandb sync {own}"
        if list((self.sweep_dir / "wandb").glob("offline-run-*")):
            return f"Sync later with: wandb sync {self.sweep_dir / 'wandb'}/offline-run-*"
        return "No W&B files were written for this job; a relaunch of the sweep logs it."

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
        keep_wandb_files_in(self.sweep_dir / "wandb")
        run = wandb.init(
            project=project,
            entity=entity,
            mode=_resolve_mode(mode),
            dir=str(self.sweep_dir),
            group=group,
            name=name,
            job_type=job_type,
            config=redact({**(config or {}), "run_dir": str(self.run_dir)}),
            reinit="finish_previous",
            settings=self._settings(),
        )
        self._guarded("pointer file", self._write_pointer, run, _resolve_mode(mode))
        return run

    def _write_pointer(self, run, mode: str) -> None:
        write_json_atomic(
            self.run_dir / POINTER_FILE,
            {
                "id": run.id,
                "name": run.name,
                "project": run.project,
                "mode": mode,
                "wandb_dir": str(self.sweep_dir / "wandb"),
            },
        )

    def _table(self, columns: list[str], rows: list[list[Any]]):
        return self._wandb.Table(columns=columns, data=rows)

    def _log_results(self, results: RunResult) -> None:
        self._run.summary.update(summary_metrics(results))
        task_rows = [
            [task, score.early, score.early_se, score.full, score.full_se, score.delta_points, score.delta_se_points]
            for task, score in task_scores(results).items()
        ]
        exits = self._table(["exit", "fraction"], [[str(k), v] for k, v in results.exit.fraction.items()])
        self._run.log(
            {
                "tasks": self._table(
                    ["task", "acc", "acc_stderr", "baseline_acc", "baseline_acc_stderr", "delta_points", "delta_stderr_points"],
                    task_rows,
                ),
                "exit_histogram": exits,
                "exit_histogram_chart": self._wandb.plot.bar(exits, "exit", "fraction", title="Exit histogram"),
            }
        )
        training = training_rows(results)
        if training:
            table = self._table(TRAINING_COLUMNS, training)
            line = self._wandb.plot.line(table, "tokens", "heldout", stroke="curve", title="Held-out loss vs training tokens")
            self._run.log({"head_training": table, "head_training_chart": line})

    def _log_artifact(self, name: str, artifact_type: str, files: list[Path], metadata: dict, extra: dict | None = None) -> None:
        """Log ``files`` (plus ``extra`` written as ``<artifact_type>.json``) as one artifact."""
        artifact = self._wandb.Artifact(name, type=artifact_type, metadata=metadata)
        for path in files:
            artifact.add_file(str(path), name=path.name)
        if extra:
            with artifact.new_file(f"{artifact_type}.json", mode="w", encoding="utf-8") as handle:
                json.dump(extra, handle, indent=2, default=str)
        self._run.log_artifact(artifact)

    def _log_folder(self, name: str, artifact_type: str, folder: str | None, extra: dict | None = None) -> None:
        """The files directly in ``folder`` (plus ``extra``) as an artifact; nothing if there are none."""
        files, too_big = artifact_files(folder)
        if files or extra:
            self._log_artifact(name, artifact_type, files, {"source_dir": folder, "left_out_too_big": too_big}, extra)

    def _log_artifacts(self, results: RunResult) -> None:
        heads_dir, trace_dir = results.artifacts.heads_dir, results.artifacts.calibration_trace_dir
        self._log_folder(artifact_name("heads", heads_dir), "early-exit-heads", heads_dir)
        # The thresholds and curves travel with the trace, so the artifact explains itself.
        record = results.to_dict()
        summary = {key: record[key] for key in ("calibration", "curves")}
        self._log_folder(artifact_name("calibration", trace_dir), "calibration", trace_dir, summary)

    def _save_results_file(self) -> None:
        # wandb's save() symlinks by default; a symlink breaks when the wandb folder is copied off
        # the machine or the run dir is deleted, so the run gets a real copy of the file as written.
        source = self.run_dir / RESULTS_FILE
        if source.is_file():
            copy = Path(self._run.dir) / RESULTS_FILE
            shutil.copyfile(source, copy)
            self._run.save(str(copy), base_path=self._run.dir, policy="now")

    def log_results(self, results: RunResult | dict) -> None:
        results = self._guarded("read results", as_result, results) if self.active else None
        if results is not None:
            self._guarded("log_results", self._log_results, results)
            self._guarded("save results.json", self._save_results_file)
            # Separately guarded: a failed upload must not cost the metrics logged above.
            self._guarded("log artifacts", self._log_artifacts, results)

    def _log_frames(self, frames: dict[str, pd.DataFrame]) -> None:
        self._run.log({key: self._table(*frame_to_rows(frame)) for key, frame in frames.items()})

    def log_frames(self, frames: dict[str, pd.DataFrame]) -> None:
        """Log DataFrames as W&B tables, keyed by name."""
        if self.active:
            self._guarded("log tables", self._log_frames, frames)

    def _log_pareto(self, summary: pd.DataFrame) -> None:
        wanted = ["family", "threshold", "acc_delta", "acc_delta_se", *SPEEDUP_COLUMNS.values()]
        frame = summary[[c for c in wanted if c in summary]]
        charts = {}
        for kind, speedup in SPEEDUP_COLUMNS.items():
            if {speedup, "acc_delta"} <= set(frame):
                points = frame.dropna(subset=[speedup, "acc_delta"])
                table = self._table(*frame_to_rows(points))
                charts[f"pareto_{kind}"] = self._wandb.plot.scatter(
                    table, speedup, "acc_delta", title=f"Accuracy change (points) vs {kind} speedup"
                )
        if charts:
            self._run.log(charts)

    def log_pareto(self, summary: pd.DataFrame) -> None:
        """Scatter plots of accuracy change vs measured and theoretical speedup, one point per run."""
        if self.active:
            self._guarded("log Pareto scatter", self._log_pareto, summary)

    def _log_report_files(self, folder: Path) -> None:
        files = [folder / name for name in REPORT_FILES if (folder / name).is_file()]
        if files:
            self._log_artifact(artifact_name("report", folder), "sweep-report", files, {"source_dir": str(folder)})

    def log_report_files(self, folder: Path) -> None:
        """The sweep report (md/html/pdf/csv) as one artifact; files that are missing are left out."""
        if self.active:
            self._guarded("log report files", self._log_report_files, Path(folder))

    def finish(self) -> None:
        """Close this run so the next job in a multirun process gets its own run; once everything was logged
        without a failure, the run dir records it (a relaunched sweep logs the points that lack it)."""
        if self.active:
            self._guarded("finish", self._run.finish)
            self._run = None
            if self.failures == 0:
                self._guarded("mark logged", self._mark_logged)

    def _mark_logged(self) -> None:
        pointer = self.run_dir / POINTER_FILE
        record = json.loads(pointer.read_text()) if pointer.is_file() else {}
        write_json_atomic(pointer, {**record, "logged": True})


def log_sweep_summary(
    sweep_dir: Path, summary_df: pd.DataFrame, pareto_df: pd.DataFrame, project: str, mode: str, entity: str | None = None
) -> None:
    """One sweep-level W&B run: summary, Pareto and hypervolume tables, Pareto scatter plots and the
    report files; never raises."""
    sweep_dir = Path(sweep_dir)
    try:
        sink = WandbSink(
            True,
            project,
            mode,
            entity,
            run_dir=sweep_dir,
            sweep_dir=sweep_dir,
            group=sweep_dir.name,
            name=f"{sweep_dir.name}-summary",
            config={"sweep_dir": str(sweep_dir), "points": len(summary_df)},
            job_type="sweep-summary",
        )
        frames = {"summary": summary_df, "pareto": pareto_df}
        if (sweep_dir / HYPERVOLUME_FILE).is_file():
            frames["hypervolume"] = pd.read_csv(sweep_dir / HYPERVOLUME_FILE)
        sink.log_frames(frames)
        sink.log_pareto(summary_df)
        sink.log_report_files(sweep_dir)
        sink.finish()
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed frame; the report is already on disk
        log.warning("warning: W&B sweep summary failed (%s: %s); report files are on disk.", type(exc).__name__, exc)
