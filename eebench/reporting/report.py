"""Sweep report from one or more sweep dirs: summary.csv, pareto.csv, hypervolume.csv, figures
(pareto.png and figures/*.png), and the same document as report.md, report.html and report.pdf.

Always writes every file, even when some or all points failed, so a broken sweep still says what
happened; each one atomically (temp file + rename, as results are), so a full disk never leaves a partial or
empty report, and the files that could not be written are raised as ``ReportNotWritten`` naming them.
All prose in the Findings section is generated from the numbers in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eebench.analysis.hypervolume import hypervolume_table
from eebench.analysis.pareto import add_pareto_flags, pareto_table, runs_to_frame
from eebench.files import atomic_target
from eebench.reporting.baselines import baselines_section
from eebench.reporting.comparison import comparison_section
from eebench.reporting.document import Document
from eebench.reporting.figure_set import OVERLAY_FILE, FigureSet, build_figures
from eebench.reporting.findings import findings_section
from eebench.reporting.paths import portable_table
from eebench.reporting.plots import FIGURE_DIR
from eebench.reporting.provenance import provenance_section
from eebench.reporting.render_html import render_html
from eebench.reporting.render_markdown import render_markdown
from eebench.reporting.render_pdf import write_pdf
from eebench.reporting.sections import (
    evaluation_note,
    hypervolume_section,
    results_tables,
    skipped_section,
    what_was_run,
)
from eebench.reporting.time_breakdown import time_breakdown_section
from eebench.reporting.training import training_section
from eebench.tracking.contract import RunResult
from eebench.tracking.results import load_sweeps

SUMMARY_FILE, PARETO_FILE, HYPERVOLUME_FILE = "summary.csv", "pareto.csv", "hypervolume.csv"
REPORT_FILE, HTML_FILE, PDF_FILE = "report.md", "report.html", "report.pdf"
FIGURE_FILE = OVERLAY_FILE


@dataclass
class ReportData:
    runs: list[RunResult]
    skipped: list[tuple[str, str]]
    frame: pd.DataFrame  # one row per complete run, with pareto_* flags
    front: pd.DataFrame  # rows on a family front, per speedup kind
    hypervolume: pd.DataFrame  # per family and per backbone


def build_report_data(sweep_dirs: list[Path], extra_skipped: list[tuple[str, str]] = ()) -> ReportData:
    """``extra_skipped``: what the sources skipped before any dir was read (e.g. W&B runs without results)."""
    runs, skipped = load_sweeps(sweep_dirs)
    skipped += extra_skipped
    frame = add_pareto_flags(runs_to_frame(runs))
    return ReportData(runs, skipped, frame, pareto_table(frame), hypervolume_table(frame))


def build_document(data: ReportData, sweep_dirs: list[Path], figures: FigureSet, out_dir: Path) -> Document:
    """The report's content in reading order: conclusions first, then the evidence, then the record."""
    names = ", ".join(Path(d).name or str(d) for d in sweep_dirs) or "no readable source"
    document = Document(f"eebench report: {names}")
    document.add(*what_was_run(data.frame, data.runs, data.skipped, sweep_dirs))
    document.add(*findings_section(data.frame, len(data.skipped)))
    document.add(*comparison_section(data.frame))
    document.add(*results_tables(data.frame))
    document.add(*baselines_section(data.runs, data.frame))
    document.add(*time_breakdown_section(data.runs))
    document.add(*hypervolume_section(data.hypervolume))
    document.add(*figures.blocks)
    training, training_notes = training_section(data.runs, out_dir)
    document.add(*training)
    document.add(*evaluation_note(data.runs))
    document.add(*provenance_section(data.frame, data.runs))
    document.add(*skipped_section(data.skipped, figures.notes + training_notes))
    return document


class ReportNotWritten(Exception):
    """Report files that could not be written (a full disk, an unwritable folder, a renderer's failure), named."""


def _write_file(path: Path, write: Callable[[Path], object]) -> str | None:
    """``write(tmp)`` then rename onto ``path`` (never a partial or empty report); why it failed, or None."""
    try:
        with atomic_target(path) as tmp:
            write(tmp)
    except Exception as exc:  # noqa: BLE001 - the other files are still written; the caller raises for all failures
        return f"{path} ({type(exc).__name__}: {exc})"
    return None


def remove_stale_figures(out_dir: Path) -> None:
    """A report written over an older one must not leave figures of families it no longer has beside its own."""
    for stale in (out_dir / FIGURE_DIR).glob("*.png"):
        stale.unlink()


def write_report(
    sweep_dirs: list[Path], out_dir: Path, extra_skipped: list[tuple[str, str]] = (), link_figures: bool = False
) -> Path:
    """Write all report files into out_dir and return the path of report.md; ReportNotWritten names the files
    that could not be written, after every other one was. ``link_figures``: report.html links figures/ by
    relative path instead of embedding them (for a report kept with its folder, e.g. committed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_figures(out_dir)
    sweep_dirs = [Path(d) for d in sweep_dirs]
    data = build_report_data(sweep_dirs, extra_skipped)
    tables = {SUMMARY_FILE: data.frame, PARETO_FILE: data.front, HYPERVOLUME_FILE: data.hypervolume}
    # The CSVs name runs and backbones as the report does: no absolute layout of the machine that made it.
    failures = [
        _write_file(out_dir / name, lambda tmp, t=table: portable_table(t).to_csv(tmp, index=False))
        for name, table in tables.items()
    ]
    document = build_document(data, sweep_dirs, build_figures(data.frame, data.runs, out_dir), out_dir)
    # Markdown first: it is the cheapest and the one most likely wanted if a later format fails.
    documents = {
        REPORT_FILE: lambda tmp: tmp.write_text(render_markdown(document, out_dir), encoding="utf-8"),
        HTML_FILE: lambda tmp: tmp.write_text(render_html(document, out_dir if link_figures else None), encoding="utf-8"),
        PDF_FILE: lambda tmp: write_pdf(document, tmp),
    }
    failures += [_write_file(out_dir / name, write) for name, write in documents.items()]
    failed = [failure for failure in failures if failure]
    if failed:
        raise ReportNotWritten(f"report file(s) not written: {'; '.join(failed)}")
    return out_dir / REPORT_FILE
