"""Head type x confidence metric comparison: one row per (backbone, placement, head, metric), one
column group per threshold target, so the effect of the head and of the metric reads off one table.

Shown only when a report varies the head type or the confidence metric; a sweep over thresholds
alone is fully described by the per-family tables.
"""

from __future__ import annotations

import pandas as pd

from eebench.analysis.pareto import FAMILY_COLUMNS, SPEEDUP_COLUMNS
from eebench.reporting.document import Heading, Paragraph, Table
from eebench.reporting.formatting import MISSING, fmt, is_missing

COMPARED = ("head", "confidence")
CELL_FORMAT = "coverage / agreement / theor. speedup / Δ pts"


def coverage(row: pd.Series) -> float:
    """Share of held-out tokens that leave before the final layer."""
    final = row.get("exit:final")
    return float("nan") if is_missing(final) else 1.0 - float(final)


def comparison_cell(row: pd.Series) -> str:
    delta = row.get("acc_delta")
    delta_text = MISSING if is_missing(delta) else f"{delta:+.1f}"
    return (
        f"{fmt(coverage(row), '.2f')} / {fmt(row.get('agreement'), '.3f')} / "
        f"{fmt(row.get(SPEEDUP_COLUMNS['theoretical']), '.2f')} / {delta_text}"
    )


def other_axes(row: pd.Series) -> str:
    """What the family label adds to backbone/placement/head/confidence (layers, calibration, ...)."""
    base = "/".join(str(row[column]) for column in FAMILY_COLUMNS)
    return str(row["family"]).removeprefix(base).strip()


def comparison_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """(the column names after the four keys, one row per family with a cell per target); a fifth key
    column names the other axes when the families differ in more than the four shown."""
    thresholds = sorted(frame["threshold"].dropna().unique())
    extra = any(other_axes(row) for _, row in frame.iterrows())
    rows = []
    for _, group in frame.groupby("family", sort=True, dropna=False):
        by_threshold = {row["threshold"]: row for _, row in group.iterrows()}
        cells = [comparison_cell(by_threshold[t]) if t in by_threshold else MISSING for t in thresholds]
        first = group.iloc[0]
        keys = [str(first[column]) for column in FAMILY_COLUMNS] + ([other_axes(first)] if extra else [])
        rows.append([*keys, *cells])
    return [*(["other axes"] if extra else []), *(f"target {fmt(t)}" for t in thresholds)], rows


def varies_head_or_metric(frame: pd.DataFrame) -> bool:
    return not frame.empty and any(frame[column].nunique() > 1 for column in COMPARED if column in frame)


def comparison_section(frame: pd.DataFrame) -> list:
    if not varies_head_or_metric(frame):
        return []
    columns, rows = comparison_rows(frame)
    return [
        Heading("Head type × confidence metric"),
        Paragraph(
            f"Each cell: {CELL_FORMAT}. Coverage is the share of held-out tokens that exit before the "
            "final layer, agreement the share of held-out tokens whose exit prediction equals the full "
            "model's (calibration and held-out documents are disjoint), theoretical speedup the cost "
            "model's (head and gate cost counted; on the tasks' own tokens where recorded, see *What was "
            "run*), Δ the mean task accuracy change in points."
        ),
        Table(["backbone", "placement", "head", "confidence", *columns], rows),
    ]
