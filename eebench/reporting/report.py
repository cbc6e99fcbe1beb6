"""Sweep report: summary.csv, pareto.csv, pareto.png and report.md from one or more sweep dirs.

Always writes every file, even when some or all points failed, so a broken sweep still says what
happened. All prose in the Findings section is generated from the numbers in the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from eebench.analysis.pareto import add_pareto_flags, pareto_table, runs_to_frame, task_names
from eebench.reporting.plots import plot_pareto
from eebench.tracking.results import load_sweeps

SUMMARY_FILE, PARETO_FILE, REPORT_FILE, FIGURE_FILE = "summary.csv", "pareto.csv", "report.md", "pareto.png"
MAX_TASKS_IN_TABLE = 3  # beyond this, per-task columns make the table unreadable; see summary.csv
WITHIN_POINTS = 1.0  # "as accurate as the full model" means losing at most this many points
TEACHER_FORCED_NOTE = (
    "Task accuracy under early exit is a **teacher-forced simulation**, not output of the timed "
    "early-exit decoder: it shows the effect of the exit decisions with the gold context at every "
    "step. Measured speedup comes from a separate generation benchmark."
)


@dataclass
class ReportData:
    runs: list[dict]
    skipped: list[tuple[str, str]]
    frame: pd.DataFrame  # one row per complete run, with pareto_* flags
    front: pd.DataFrame  # rows on a front, per family and speedup kind


def build_report_data(sweep_dirs: list[Path]) -> ReportData:
    runs, skipped = load_sweeps(sweep_dirs)
    frame = add_pareto_flags(runs_to_frame(runs))
    return ReportData(runs, skipped, frame, pareto_table(frame))


def write_report(sweep_dirs: list[Path], out_dir: Path) -> Path:
    """Write all report files into out_dir and return the path of report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = build_report_data([Path(d) for d in sweep_dirs])
    data.frame.to_csv(out_dir / SUMMARY_FILE, index=False)
    data.front.to_csv(out_dir / PARETO_FILE, index=False)
    plot_pareto(data.frame, out_dir / FIGURE_FILE)
    report_path = out_dir / REPORT_FILE
    report_path.write_text(render_markdown(data, sweep_dirs), encoding="utf-8")
    return report_path


# ----------------------------------------------------------------------------- formatting helpers

def _fmt(value, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def _pct(fraction) -> str:
    return _fmt(fraction * 100 if isinstance(fraction, float) else fraction, ".1f")


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731 - a pipe would split the cell
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _distinct(values) -> list[str]:
    return sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))})


def _describe_point(row: pd.Series) -> str:
    return f"`{row['family']}` at threshold {_fmt(row['threshold'], 'g')}"


# ----------------------------------------------------------------------------- sections

def _what_was_run(data: ReportData, sweep_dirs: list[Path]) -> str:
    frame = data.frame
    total = len(data.runs) + len(data.skipped)
    times = pd.to_datetime(frame["time"], utc=True, errors="coerce").dropna() if not frame.empty else []
    dates = f"{min(times):%Y-%m-%d %H:%M} – {max(times):%Y-%m-%d %H:%M} UTC" if len(times) else "unknown"
    lines = [
        "## What was run",
        "",
        f"- Sweep directories: {', '.join(f'`{d}`' for d in sweep_dirs)}",
        f"- Backbones: {', '.join(_distinct(frame['backbone'])) or 'none completed'}",
        f"- Points: {total} ({len(data.runs)} complete, {len(data.skipped)} skipped or failed)",
        f"- Configuration families (backbone/placement/head/confidence): {frame['family'].nunique()}",
        f"- Calibration: {', '.join(_distinct(frame['calibration_method'])) or '–'}",
        f"- Tasks: {', '.join(task_names(frame)) or 'none'}",
        f"- Run dates: {dates}",
    ]
    return "\n".join(lines)


def _mixed_hardware_note(frame: pd.DataFrame) -> str:
    devices, hosts = _distinct(frame["device"]), _distinct(frame["hostname"])
    if len(devices) <= 1 and len(hosts) <= 1:
        return ""
    return (
        f"> **Timings come from different machines** (devices: {', '.join(devices) or '?'}; "
        f"hosts: {', '.join(hosts) or '?'}). Compare measured speedups and tokens/s only within one device/host."
    )


def _table_headers(tasks: list[str], mixed: bool) -> list[str]:
    headers = ["threshold", "acc EE %", "acc full %", "Δ pts"]
    for task in tasks:
        headers += [f"{task} EE %", f"{task} full %"]
    headers += ["agreement", "mean exit layer", "theor. speedup", "meas. speedup (min–max)",
                "tok/s full", "tok/s EE", "front"]
    return headers + (["device@host"] if mixed else [])


def _measured_cell(row: pd.Series) -> str:
    # The min-max over repeats shows whether a speedup is distinguishable from timing noise.
    low, high = row["speedup_min"], row["speedup_max"]
    spread = "" if math.isnan(low) or math.isnan(high) else f" ({low:.2f}–{high:.2f})"
    return _fmt(row["measured_speedup"], ".2f") + spread


def _table_row(row: pd.Series, tasks: list[str], mixed: bool) -> list[str]:
    cells = [_fmt(row["threshold"], "g"), _pct(row["mean_acc"]), _pct(row["mean_baseline_acc"]),
             _fmt(row["acc_delta"], "+.1f")]
    for task in tasks:
        cells += [_pct(row[f"acc:{task}"]), _pct(row[f"baseline:{task}"])]
    front = [kind for kind in ("measured", "theoretical") if row[f"pareto_{kind}"]]
    cells += [_fmt(row["agreement"], ".3f"), _fmt(row["mean_layers"], ".1f"),
              _fmt(row["theoretical_speedup"], ".2f"), _measured_cell(row),
              _fmt(row["full_tokens_per_s"], ".1f"), _fmt(row["early_exit_tokens_per_s"], ".1f"),
              ", ".join(front) or ""]
    return cells + ([f"{row['device']}@{row['hostname']}"] if mixed else [])


def _results_tables(frame: pd.DataFrame) -> str:
    lines = ["## Results", ""]
    if frame.empty:
        return "\n".join(lines + ["No complete runs."])
    note = _mixed_hardware_note(frame)
    tasks = task_names(frame)
    shown_tasks = tasks if 1 < len(tasks) <= MAX_TASKS_IN_TABLE else []
    lines += [
        "Accuracy is the mean over tasks (EE = early exit, full = full model); Δ is EE minus full in "
        "points. *front* marks Pareto-optimal points within the family (maximising accuracy change "
        "and speedup). Per-run details, including the exit histogram, are in `summary.csv`.",
        "",
    ] + ([note, ""] if note else [])
    for family, group in frame.groupby("family", sort=False):
        layers = ", ".join(_distinct(group["exit_layers"]))
        lines += [f"### {family}", "", f"Exit layers: {layers or '–'}", ""]
        rows = [_table_row(row, shown_tasks, bool(note)) for _, row in group.iterrows()]
        lines += [_markdown_table(_table_headers(shown_tasks, bool(note)), rows), ""]
    return "\n".join(lines).rstrip()


def _fastest_within_tolerance(rows: pd.DataFrame, speedup: str) -> str:
    timed = rows.dropna(subset=[speedup, "acc_delta"])
    if timed.empty:
        return ""
    close = timed[timed["acc_delta"] >= -WITHIN_POINTS]
    if close.empty:
        best = timed.loc[timed["acc_delta"].idxmax()]
        return (f"no configuration stays within {WITHIN_POINTS:g} point of the full model; the smallest "
                f"loss is {_fmt(best['acc_delta'], '+.1f')} points ({_describe_point(best)}, "
                f"{_fmt(best[speedup], '.2f')}x).")
    best = close.loc[close[speedup].idxmax()]
    verdict = "" if best[speedup] > 1 else " — which is **not faster** than the full model"
    return (f"the fastest configuration within {WITHIN_POINTS:g} point of the full model is "
            f"{_describe_point(best)}: {_fmt(best[speedup], '.2f')}x {speedup.split('_')[0]} speedup, "
            f"accuracy change {_fmt(best['acc_delta'], '+.1f')} points{verdict}.")


def _backbone_finding(backbone: str, rows: pd.DataFrame) -> str:
    measured = _fastest_within_tolerance(rows, "measured_speedup")
    if measured:
        text = f"**{backbone}**: {measured}"
    else:
        theoretical = _fastest_within_tolerance(rows, "theoretical_speedup")
        text = f"**{backbone}**: no measured timings with task accuracy; by theoretical speedup, " + (
            theoretical or "nothing to compare (no task accuracy recorded).")
    paired = rows.dropna(subset=["measured_speedup", "theoretical_speedup"])
    if not paired.empty:
        ratio = (paired["measured_speedup"] / paired["theoretical_speedup"]).median()
        text += f" Measured speedup is a median {ratio:.0%} of the theoretical speedup"
        text += (", i.e. faster than the cost model allows: suspect timing noise (see the min–max "
                 "range) or a mismatch between what the two measure." if ratio > 1.05 else ".")
    return text


def _slower_than_full(frame: pd.DataFrame) -> str:
    timed = frame.dropna(subset=["measured_speedup"])
    if timed.empty:
        return "No point has a measured speedup (timing was disabled or failed), so real speed is unknown."
    slower = timed[timed["measured_speedup"] < 1.0]
    if slower.empty:
        return f"No timed point is slower than the full model (all {len(timed)} have measured speedup ≥ 1)."
    examples = "; ".join(f"{_describe_point(r)} ({_fmt(r['measured_speedup'], '.2f')}x)"
                         for _, r in slower.head(8).iterrows())
    more = f"; and {len(slower) - 8} more" if len(slower) > 8 else ""
    return (f"**{len(slower)} of {len(timed)} timed points are slower than the full model** "
            f"(measured speedup < 1): {examples}{more}.")


def _caveats(frame: pd.DataFrame) -> list[str]:
    """Data-quality warnings worth stating plainly next to the headline numbers."""
    notes = []
    noisy = frame[(frame["speedup_min"] < 1.0) & (frame["speedup_max"] > 1.0)]
    if not noisy.empty:
        notes.append(f"{len(noisy)} timed point(s) have a measured min–max range spanning 1x, so timing "
                     "cannot distinguish them from the full model: "
                     + "; ".join(_describe_point(r) for _, r in noisy.head(8).iterrows()) + ".")
    costly = frame[frame["theoretical_speedup"] < 1.0]
    if not costly.empty:
        notes.append(f"{len(costly)} point(s) have theoretical speedup below 1 (by the cost model they do "
                     "more work than the full model): "
                     + "; ".join(_describe_point(r) for _, r in costly.head(8).iterrows()) + ".")
    return notes


def _findings(data: ReportData) -> str:
    frame = data.frame
    lines = ["## Findings", ""]
    if frame.empty:
        return "\n".join(lines + ["No complete runs, so there is nothing to conclude; see *Skipped* below."])
    for backbone, rows in frame.groupby("backbone", sort=True):
        lines += [f"- {_backbone_finding(backbone, rows)}"]
    lines += [f"- {_slower_than_full(frame)}"] + [f"- {note}" for note in _caveats(frame)]
    if data.skipped:
        lines += [f"- {len(data.skipped)} point(s) were skipped or failed and are not in these numbers."]
    return "\n".join(lines)


def _package_versions(runs: list[dict]) -> list[str]:
    versions: dict[str, set] = {}
    for results in runs:
        packages = (results.get("provenance") or {}).get("packages") or {}
        for name, version in packages.items():
            versions.setdefault(name, set()).add("n/a" if version is None else str(version))
    return [f"{name} {' / '.join(sorted(found))}" for name, found in sorted(versions.items())]


def _provenance_section(data: ReportData) -> str:
    frame = data.frame
    shas = _distinct(frame["git_sha"]) if not frame.empty else []
    lines = [
        "## Provenance",
        "",
        f"- eebench git sha: {', '.join(shas) or 'unknown'}"
        + (" (**runs come from different commits**)" if len(shas) > 1 else ""),
        f"- Packages: {', '.join(_package_versions(data.runs)) or 'unknown'}",
        f"- Timing devices: {', '.join(_distinct(frame['device'])) or 'unknown'}",
        f"- Hosts: {', '.join(_distinct(frame['hostname'])) or 'unknown'}",
        f"- Timing strategy: {', '.join(_distinct(frame['timing_strategy'])) or 'timing disabled'}",
        f"- Report generated: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]
    note = _mixed_hardware_note(frame) if not frame.empty else ""
    return "\n".join(lines + ([f"\n{note}"] if note else []))


def _evaluation_note(runs: list[dict]) -> str:
    modes = _distinct(results.get("eval_mode") for results in runs)
    lines = ["## How accuracy was measured", "", TEACHER_FORCED_NOTE]
    return "\n".join(lines + ([""] + [f"Recorded eval mode: *{mode}*" for mode in modes] if modes else []))


def _skipped_section(skipped: list[tuple[str, str]]) -> str:
    lines = ["## Skipped", ""]
    if not skipped:
        return "\n".join(lines + ["None: every run directory found held complete results."])
    return "\n".join(lines + [f"- `{run_dir}`: {reason}" for run_dir, reason in skipped])


def render_markdown(data: ReportData, sweep_dirs: list[Path]) -> str:
    names = ", ".join(Path(d).name or str(d) for d in sweep_dirs)
    sections = [
        f"# eebench report: {names}",
        _what_was_run(data, sweep_dirs),
        _results_tables(data.frame),
        f"## Accuracy vs speedup\n\n![Pareto fronts]({FIGURE_FILE})\n\nLeft: measured speedup "
        "(generation on this hardware). Right: theoretical speedup from the layers skipped. Lines join "
        "each family's Pareto front; numbers next to points are the target agreement thresholds; dashed "
        "lines mark no accuracy change and no speedup.",
        _findings(data),
        _evaluation_note(data.runs),
        _provenance_section(data),
        _skipped_section(data.skipped),
    ]
    return "\n\n".join(sections) + "\n"
