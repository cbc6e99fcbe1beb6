"""Report sections made of document blocks: what was run, result tables, hypervolumes, method notes,
and what was skipped. Findings and provenance live in their own modules."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from eebench.analysis.hypervolume import REFERENCE_MARGIN_POINTS, REFERENCE_SPEEDUP
from eebench.analysis.pareto import SPEEDUP_COLUMNS, task_names
from eebench.reporting.comparability import mixed_hardware_caption, mixed_hardware_note
from eebench.reporting.document import Bullets, Callout, Heading, Paragraph, Table
from eebench.reporting.findings import answer_flips, change_interval
from eebench.reporting.formatting import MISSING, distinct, fmt, is_missing, pct, with_error
from eebench.reporting.paths import shown_path, shown_run
from eebench.reporting.provenance import run_dates
from eebench.reporting.speed import NO_DIFFERENCE, column, engine_overhead, interval, reference_label, verdict
from eebench.tracking.contract import RunResult

MAX_TASKS_IN_TABLE = 3  # beyond this, per-task columns make the table unreadable; see summary.csv
TEACHER_FORCED_NOTE = (
    "Task accuracy under early exit is a **teacher-forced simulation**, not output of the timed "
    "early-exit decoder: it shows the effect of the exit decisions with the gold context at every "
    "step. Measured speedup comes from a separate generation benchmark."
)
STDERR_NOTE = (
    "± values are one standard error. Per-task stderr is the evaluator's; the mean over tasks uses "
    "√(Σ se²)/n, tasks assumed independent (they hold different examples). The accuracy change Δ is **paired by "
    "example**: early exit and the full model answer the same examples, so its stderr is that of the per-example "
    "differences (sd/√n per task, then combined like the mean), its 95% CI is Δ ± 1.96 se (normal approximation), "
    "and ↑/↓ count the examples early exit scored higher / lower than the full model. Results written before "
    "per-example scores were recorded fall back to the unpaired √(se_EE² + se_full²), which is conservative "
    "(`acc_delta_method` in `summary.csv` says which a point holds)."
)
SHORT_KIND = {"measured": "meas.", "theoretical": "theor."}


def what_was_run(frame: pd.DataFrame, runs: list, skipped: list, sweep_dirs: list[Path]) -> list:
    total = len(runs) + len(skipped)
    return [
        Heading("What was run"),
        Bullets(
            [
                f"Sweep directories: {', '.join(f'`{shown_path(d)}`' for d in sweep_dirs) or 'none readable'}",
                f"Backbones: {', '.join(distinct(frame['backbone'])) or 'none completed'}",
                f"Points: {total} ({len(runs)} complete, {len(skipped)} skipped or failed)",
                f"Configuration families (backbone/placement/head/confidence, plus any other axis that varies): "
                f"{frame['family'].nunique()}",
                f"Calibration: {', '.join(distinct(frame['calibration_method'])) or '–'}",
                f"Tasks: {', '.join(task_names(frame)) or 'none'}",
                f"Precision (backbone dtype): {', '.join(distinct(column(frame, 'backbone_dtype'))) or 'not recorded'}",
                f"Speed reference: {reference_label(frame)}" + (f"; {overhead}" if (overhead := engine_overhead(frame)) else ""),
                f"Theoretical speedup (Pareto x-axis, tables, findings): {theoretical_source(frame)}",
                f"Run dates: {run_dates(frame)}",
            ]
        ),
    ]


def theoretical_source(frame: pd.DataFrame) -> str:
    """Which tokens the theoretical axis was computed on: the tasks' own, held-out prose, or a mix."""
    sources = column(frame, "axis_theoretical_source").value_counts()
    names = {
        "tasks": "on the evaluation tasks' own tokens (the data the accuracy comes from)",
        "heldout": "on held-out prose (no evaluation tasks)",
    }
    if len(sources) <= 1:
        return names.get(next(iter(sources.index), ""), "not recorded")
    return "; ".join(f"{count} point(s) {names.get(source, source)}" for source, count in sources.items())


# ----------------------------------------------------------------------------- results tables


def _table_headers(tasks: list[str], mixed: bool) -> list[str]:
    headers = ["threshold", "acc EE %", "acc full %", "Δ pts [95% CI] ↑↓"]
    for task in tasks:
        headers += [f"{task} EE %", f"{task} full %"]
    headers += [
        "agreement",
        "mean exit layer",
        "theor. speedup",
        "meas. speedup [95% CI] (min–max)",
        "tok/s full",
        "tok/s EE",
        "decode tok/s full / EE",
        "decode ms/token full / EE",
        "family front",
        "backbone front",
    ]
    return headers + (["device@host"] if mixed else [])


def _measured_cell(row: pd.Series) -> str:
    # The 95% CI (or, in results without one, the min-max over repeats) shows whether a speedup is
    # distinguishable from timing noise; a flagged measurement error says so in its own cell.
    ci, low, high = interval(row), row["speedup_min"], row["speedup_max"]
    if ci is not None:
        spread = f" [{ci[0]:.2f}–{ci[1]:.2f}]" + (" ≈ 1" if verdict(row) == NO_DIFFERENCE else "")
    else:
        spread = "" if math.isnan(low) or math.isnan(high) else f" ({low:.2f}–{high:.2f})"
    error = " ⚠ measurement error" if str(row.get("timing_flags") or "").strip() else ""
    return fmt(row["measured_speedup"], ".2f") + spread + error


def _full_and_early_cell(row: pd.Series, key: str, spec: str) -> str:
    full, early = row.get(f"full_{key}"), row.get(f"early_exit_{key}")
    if is_missing(full) and is_missing(early):  # e.g. runs from before prefill and decode were timed apart
        return MISSING
    return f"{fmt(full, spec)} / {fmt(early, spec)}"


def _front_cell(row: pd.Series, prefix: str) -> str:
    return ", ".join(short for kind, short in SHORT_KIND.items() if row.get(f"{prefix}_{kind}", False))


def _delta_cell(row: pd.Series) -> str:
    """'-1.0 ± 0.5 [-2.0, +0.0] 2↑ 3↓': the change, its stderr and 95% CI, and the examples that changed answer."""
    cell = with_error(fmt(row["acc_delta"], "+.1f"), row["acc_delta_se"])
    if (ci := change_interval(row)) and not is_missing(row["acc_delta"]):
        cell += f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"
    if flips := answer_flips(row):
        cell += f" {flips[0]}↑ {flips[1]}↓"
    return cell


def _accuracy_cells(row: pd.Series, tasks: list[str]) -> list[str]:
    cells = [
        with_error(pct(row["mean_acc"]), row["mean_acc_se"], 100),
        with_error(pct(row["mean_baseline_acc"]), row["mean_baseline_acc_se"], 100),
        _delta_cell(row),
    ]
    for task in tasks:
        cells += [
            with_error(pct(row[f"acc:{task}"]), row.get(f"acc_se:{task}"), 100),
            with_error(pct(row[f"baseline:{task}"]), row.get(f"baseline_se:{task}"), 100),
        ]
    return cells


def _table_row(row: pd.Series, tasks: list[str], mixed: bool) -> list[str]:
    cells = [fmt(row["threshold"], "g")] + _accuracy_cells(row, tasks)
    cells += [
        fmt(row["agreement"], ".3f"),
        fmt(row["mean_layers"], ".1f"),
        fmt(row[SPEEDUP_COLUMNS["theoretical"]], ".2f"),
        _measured_cell(row),
        fmt(row["full_tokens_per_s"], ".1f"),
        fmt(row["early_exit_tokens_per_s"], ".1f"),
        _full_and_early_cell(row, "decode_tokens_per_s", ".1f"),
        _full_and_early_cell(row, "decode_ms_per_token", ".1f"),
        _front_cell(row, "pareto"),
        _front_cell(row, "pareto_backbone"),
    ]
    return cells + ([f"{row['device']}@{row['hostname']}"] if mixed else [])


def results_tables(frame: pd.DataFrame) -> list:
    blocks: list = [Heading("Results")]
    if frame.empty:
        return blocks + [Paragraph("No complete runs.")]
    note = mixed_hardware_note(frame)
    tasks = task_names(frame)
    shown_tasks = tasks if 1 < len(tasks) <= MAX_TASKS_IN_TABLE else []
    blocks.append(
        Paragraph(
            "Accuracy is the mean over tasks (EE = early exit, full = full model); Δ is EE minus full in "
            "points, paired by example: [..] its 95% CI, ↑/↓ the examples EE scored higher / lower than full. "
            "*family front* / *backbone front* mark Pareto-optimal points (maximising accuracy "
            "change and speedup) within the family or across all families of the backbone, by measured "
            "(meas.) or theoretical (theor.) speedup. Measured speedups are against the speed reference (see "
            "*What was run*); [..] is their 95% CI (≈ 1: it contains 1.0, **no measurable difference**), (..) the "
            "min–max over repeats for results without a CI. ± is one standard error (see *How accuracy was "
            "measured*). *decode* columns leave out the prompt pass (prefill and first token), which runs "
            "at full depth; ms/token is the time between two tokens of one sequence. "
            "Per-run details, including the exit histogram and prefill times, are in `summary.csv`."
        )
    )
    blocks += [Callout(note)] if note else []
    for family, group in frame.groupby("family", sort=False):
        layers = ", ".join(distinct(group["exit_layers"])) or "–"
        rows = [_table_row(row, shown_tasks, bool(note)) for _, row in group.iterrows()]
        blocks.append(
            Table(
                _table_headers(shown_tasks, bool(note)),
                rows,
                title=family,
                caption=f"Exit layers: {layers}. ± is one stderr.{mixed_hardware_caption(frame)}",
            )
        )
    return blocks


# ----------------------------------------------------------------------------- hypervolume


def hypervolume_section(table: pd.DataFrame) -> list:
    blocks: list = [Heading("Pareto hypervolume")]
    if table.empty:
        return blocks + [Paragraph("No complete runs, so no hypervolume.")]
    reference = table["reference_acc_delta"].iloc[0]
    rows = [
        [
            row["scope"],
            row["name"],
            str(row["points"]),
            fmt(row["hv_measured"], ".3g"),
            fmt(row["hv_theoretical"], ".3g"),
            f"{row['front_measured']} / {row['front_theoretical']}",
        ]
        for _, row in table.iterrows()
    ]
    caption = (
        "Area dominated by the points (maximising speedup and accuracy change), in speedup-x × accuracy "
        f"points, above the reference point (speedup {REFERENCE_SPEEDUP:g}x, Δ {reference:+.1f} points = "
        f"the worst Δ in this report minus {REFERENCE_MARGIN_POINTS:g} point). Larger is better; points "
        "slower than the full model add nothing. The reference depends on this report's worst point, "
        "so compare hypervolumes only within one report. Also in `hypervolume.csv`."
    )
    return blocks + [
        Table(["scope", "name", "points", "HV measured", "HV theoretical", "front size (meas. / theor.)"], rows, caption=caption)
    ]


# ----------------------------------------------------------------------------- notes and skips


def evaluation_note(runs: list[RunResult]) -> list:
    modes = distinct(results.eval_mode for results in runs)
    return [Heading("How accuracy was measured"), Paragraph(TEACHER_FORCED_NOTE), Paragraph(STDERR_NOTE)] + [
        Paragraph(f"Recorded eval mode: *{mode}*") for mode in modes
    ]


def skipped_section(skipped: list[tuple[str, str]], figure_notes: list[str]) -> list:
    blocks: list = [Heading("Skipped")]
    if not skipped:
        blocks.append(Paragraph("None: every run directory found held complete results."))
    else:
        blocks.append(Bullets([f"`{shown_run(run_dir)}`: {reason}" for run_dir, reason in skipped]))
    if figure_notes:
        blocks += [Paragraph("Figures not drawn:"), Bullets(figure_notes)]
    return blocks
