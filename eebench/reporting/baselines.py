"""Fixed-block baselines (``timing.baselines``) side by side with the early-exit points, ranked by their CIs.

Every baseline is timed in the same schedule and on the same prompts as the point that ran it, so its speedup over
transformers greedy is comparable with that point's. A sweep times the same baseline at every point: each
measurement is shown once per distinct configuration (backbone, name, block, draft length) with how many points
measured it and the spread of their point estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from eebench.reporting.document import Heading, Paragraph, Table
from eebench.reporting.formatting import fmt, is_missing
from eebench.reporting.speed import NO_DIFFERENCE, fastest, flagged, has_intervals, interval, verdict
from eebench.tracking.contract import RunResult


@dataclass(frozen=True)
class BaselineRow:
    backbone: str
    name: str
    exit_layer: int
    draft_length: int | None
    speedup: float
    low: float
    high: float
    token_match: float
    lossless: bool
    flagged: bool


HEADERS = [
    "backbone",
    "baseline",
    "block",
    "draft",
    "speedup [95% CI]",
    "vs reference",
    "measured (range)",
    "token match",
    "lossless",
]


def baseline_rows(runs: list[RunResult]) -> list[BaselineRow]:
    rows = []
    for run in runs:
        for b in run.timing.baselines if run.timing is not None else []:
            low, high = b.speedup_ci95
            rows.append(
                BaselineRow(
                    run.backbone,
                    b.name,
                    b.exit_layer,
                    b.draft_length,
                    b.speedup,
                    low,
                    high,
                    b.token_match_with_reference,
                    b.lossless,
                    bool(b.flags),
                )
            )
    return rows


def _as_frame(rows: list[BaselineRow]) -> pd.DataFrame:
    frame = pd.DataFrame([r.__dict__ for r in rows])
    frame["speedup_ci_lo"], frame["speedup_ci_hi"] = frame["low"], frame["high"]
    return frame


def _summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct baseline: the measurement with the median point estimate, and the spread over points."""
    keys = ["backbone", "name", "exit_layer", "draft_length"]
    out = []
    for _, group in frame.groupby(keys, dropna=False, sort=True):
        ordered = group.sort_values("speedup")
        median_row = ordered.iloc[(len(ordered) - 1) // 2].copy()
        median_row["count"] = len(group)
        median_row["spread"] = f"{group['speedup'].min():.2f}–{group['speedup'].max():.2f}" if len(group) > 1 else ""
        median_row["any_flagged"] = bool(group["flagged"].any())
        out.append(median_row)
    return pd.DataFrame(out)


def _early_exit_best(frame: pd.DataFrame, backbone: str) -> str:
    """The early-exit points of ``backbone`` that no other is measurably faster than (by CI)."""
    usable = frame[(frame["backbone"] == backbone) & ~flagged(frame)]  # measurement errors are never ranked
    timed = usable.dropna(subset=["speedup_ci_lo", "speedup_ci_hi"])
    if timed.empty or not has_intervals(timed):
        return ""
    best = fastest(timed)
    names = ", ".join(f"{row['family']} @ {fmt(row['threshold'])}" for _, row in best.head(3).iterrows())
    ci = interval(best.iloc[0])
    more = f" (and {len(best) - 3} more)" if len(best) > 3 else ""
    example = f"{best.iloc[0]['measured_speedup']:.2f}x [{ci[0]:.2f}–{ci[1]:.2f}]"
    return f"fastest early-exit point(s) of {backbone} by CI: {names}{more}, e.g. {example}"


def baselines_section(runs: list[RunResult], frame: pd.DataFrame) -> list:
    rows = baseline_rows(runs)
    if not rows:
        return []
    summary = _summary(_as_frame(rows))
    table_rows = []
    for _, row in summary.iterrows():
        said = verdict(row)
        table_rows.append(
            [
                str(row["backbone"]),
                str(row["name"]),
                str(int(row["exit_layer"])),
                "" if is_missing(row["draft_length"]) else str(int(row["draft_length"])),
                f"{row['speedup']:.2f}x [{row['low']:.2f}–{row['high']:.2f}]" + (" ⚠ flagged" if row["any_flagged"] else ""),
                said if said == NO_DIFFERENCE else f"{said} than the reference",
                f"{int(row['count'])}" + (f" ({row['spread']})" if row["spread"] else ""),
                fmt(row["token_match"], ".3f"),
                "yes" if row["lossless"] else "no",
            ]
        )
    best = [text for text in (_early_exit_best(frame, b) for b in summary["backbone"].unique()) if text]
    return [
        Heading("Fixed-block baselines"),
        Paragraph(
            "Published comparison points that exit at one fixed block instead of by confidence, each timed as one more "
            "workload of the same schedule and prompts as the point that ran it (speedup over transformers greedy, "
            "paired bootstrap 95% CI): static exit (every token leaves at the block through its trained head), "
            "LayerSkip-style self-speculation (drafts from the block through the model's own final norm and lm_head, "
            "without LayerSkip's layer-dropout training; verified by the full model) and transformers' "
            "`assistant_early_exit`. A baseline measured at several points is shown once: the measurement with the "
            "median point estimate, with the number of measurements and the range of their point estimates."
            + (" For comparison, " + "; ".join(best) + "." if best else "")
        ),
        Table(
            HEADERS,
            table_rows,
        ),
    ]
