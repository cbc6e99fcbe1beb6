"""Findings on calibration: per method, how many heads x targets hold their target on held-out documents, and
which points miss it."""

from __future__ import annotations

import pandas as pd

from eebench.reporting.formatting import fmt
from eebench.reporting.listings import Listings, describe_point
from eebench.reporting.speed import column

# Columns that tell one calibrated policy from another: timed copies of an untimed point are counted once.
_POLICY_COLUMNS = ("backbone", "head", "confidence", "exit_layers", "head_budget", "calibration_method", "threshold")


def calibration_share(frame: pd.DataFrame) -> str:
    """Per calibration method, how many heads x targets meet the target on held-out documents (heads that let
    at least one held-out token exit)."""
    checked = column(frame, "heldout_heads_checked")
    rows = frame[checked.notna()]
    if rows.empty:
        return ""
    keys = [name for name in _POLICY_COLUMNS if name in rows.columns]
    rows = rows[~rows[keys].astype(str).duplicated()].copy()  # exit_layers holds lists
    rows["calibration_method"] = column(rows, "calibration_method").fillna("max_coverage")
    parts = []
    for method, group in rows.groupby("calibration_method", sort=True):
        met, total = int(group["heldout_heads_met"].sum()), int(group["heldout_heads_checked"].sum())
        share = f" ({100 * met / total:.0f}%)" if total else ""
        significant = column(group, "heldout_heads_significant_miss")
        below = f", {int(significant.sum())} significantly below" if significant.notna().any() else ""
        parts.append(f"{method} {met} of {total}{share}{below}")
    return (
        "**Calibration on held-out documents**, heads x targets whose exited tokens agree with the full model at "
        f"least at the target: {'; '.join(parts)}. The held-out text is a sample too: a head whose true agreement "
        "equals the target falls below it there about half the time; *significantly below* means by over a "
        "one-sided 95% margin, with the held-out sequences as the independent units."
    )


def calibration_misses(frame: pd.DataFrame, listings: Listings | None = None) -> str:
    """Every point with a head whose held-out exited tokens fell below the agreement target (a table when many)."""
    misses = column(frame, "calibration_misses")
    missed = frame[misses.notna() & (misses.astype(str) != "")]
    if missed.empty:
        return ""
    listed = (listings or Listings()).points(
        missed,
        lambda row: f"{describe_point(row)} (target {fmt(row['threshold'], 'g')}): {row['calibration_misses']}",
        "Points that miss their calibration target",
        {
            "configuration": lambda row: row["family"],
            "target": lambda row: fmt(row["threshold"], "g"),
            "heads below target: held-out agreement of the tokens they let exit": lambda row: row["calibration_misses"],
        },
    )
    return (
        f"**{len(missed)} point(s) miss their calibration target on held-out documents** (agreement with the "
        f"full model of the tokens a head let exit, below the target): {listed}."
    )
