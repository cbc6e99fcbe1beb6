"""Measured speedups read through their 95% confidence intervals (paired bootstrap, from results.json).

A speedup whose CI contains 1.0 is "no measurable difference" from the speed reference, and one
configuration is faster than another only when their CIs separate; otherwise the two are
indistinguishable, whatever their point estimates say. Points whose timing was flagged as a
measurement error (e.g. a speedup above what skipping every skippable block could give) are never
ranked. Results written before CIs were recorded fall back to point estimates, and say so.
"""

from __future__ import annotations

import pandas as pd

from eebench.reporting.formatting import distinct, fmt, is_missing

NO_DIFFERENCE = "no measurable difference"
REFERENCE_NAMES = {"transformers_greedy": "transformers greedy decoding (`generate(do_sample=False)`)"}
# Before transformers greedy became the reference, speedups were against eebench's own full-depth path.
UNRECORDED_REFERENCE = "eebench's full-depth engine (not recorded: results from before the reference was)"


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or an all-missing one for frames built from results that predate it."""
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def interval(row: pd.Series, name: str = "speedup") -> tuple[float, float] | None:
    low, high = row.get(f"{name}_ci_lo"), row.get(f"{name}_ci_hi")
    return None if is_missing(low) or is_missing(high) else (float(low), float(high))


def verdict(row: pd.Series) -> str | None:
    """'faster', 'slower' or NO_DIFFERENCE against the reference, by the CI; None without one."""
    ci = interval(row)
    if ci is None:
        return None
    return "faster" if ci[0] > 1.0 else "slower" if ci[1] < 1.0 else NO_DIFFERENCE


def speedup_text(row: pd.Series, name: str = "speedup", value_column: str = "measured_speedup") -> str:
    """``1.30x [95% CI 1.20–1.40]``, the point estimate alone when no CI was recorded."""
    ci = interval(row, name)
    value = fmt(row.get(value_column), ".2f") + "x"
    return value if ci is None else f"{value} [95% CI {ci[0]:.2f}–{ci[1]:.2f}]"


def flagged(frame: pd.DataFrame) -> pd.Series:
    """True where the timing was flagged as a measurement error."""
    return column(frame, "timing_flags").fillna("").astype(str).str.strip() != ""


def has_intervals(rows: pd.DataFrame) -> bool:
    """Every row carries a speedup CI, so the rows can be ranked by CIs."""
    return not rows.empty and column(rows, "speedup_ci_lo").notna().all() and column(rows, "speedup_ci_hi").notna().all()


def fastest(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that no other row is measurably faster than (no other CI lies wholly above theirs).
    One row: a clear fastest; several: indistinguishable. Needs ``has_intervals(rows)``."""
    return rows[rows["speedup_ci_hi"] >= rows["speedup_ci_lo"].max()]


def timed_points(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that measured a speedup (untimed points measured nothing on their hardware)."""
    return frame[column(frame, "measured_speedup").notna()]


def reference_label(frame: pd.DataFrame) -> str:
    """The speed reference of the timed points (untimed ones have none to record)."""
    timed = timed_points(frame)
    names = [REFERENCE_NAMES.get(name, f"`{name}`") for name in distinct(column(timed, "timing_reference"))]
    if column(timed, "timing_reference").isna().any() and not timed.empty:
        names.append(UNRECORDED_REFERENCE)
    return " and ".join(names) or "none (no timed points)"


def reference_short(frame: pd.DataFrame) -> str:
    """The reference in a few words, for sentences."""
    references = distinct(column(frame, "timing_reference"))
    return "transformers greedy decoding" if references == ["transformers_greedy"] else "the speed reference"


def engine_overhead(frame: pd.DataFrame) -> str:
    """The engine's full-depth path against the reference, over the points that measured it ('' if none)."""
    measured = frame.dropna(subset=["engine_full_speedup"]) if "engine_full_speedup" in frame else frame.iloc[0:0]
    if measured.empty:
        return ""
    values = measured["engine_full_speedup"]
    bounds = (values.min(), values.max())
    if len(measured) == 1:
        row = measured.iloc[0]
        text = speedup_text(row, "engine_full_speedup", "engine_full_speedup")
        bounds = interval(row, "engine_full_speedup") or bounds
    else:
        low, high = f"{values.min():.2f}x", f"{values.max():.2f}x"
        text = f"{low} at all {len(measured)} points" if low == high else f"{low} to {high} over {len(measured)} points"
    return f"eebench's own full-depth path against it: {text} ({_engine_reading(*bounds)})"


def _engine_reading(low: float, high: float) -> str:
    """What the engine's own ratio means for the early-exit speedups beside it: by its CI for one point, by the
    range of the points for several."""
    if high < 1:
        return "below 1: that path is slower than the reference, so early exit must first win back the difference"
    if low > 1:
        return "above 1: that path is faster than the reference, so part of each early-exit speedup is the engine's"
    return "it spans 1: that path is not consistently faster or slower than the reference"
