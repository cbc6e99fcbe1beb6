"""The generated Findings: every sentence is computed from the numbers in the summary frame."""

from __future__ import annotations

import pandas as pd

from eebench.analysis.pareto import SPEEDUP_COLUMNS
from eebench.reporting.document import Bullets, Heading, Paragraph
from eebench.reporting.formatting import distinct, fmt, is_missing
from eebench.reporting.speed import (
    NO_DIFFERENCE,
    column,
    fastest,
    flagged,
    has_intervals,
    reference_short,
    speedup_text,
    timed_points,
    verdict,
)

THEORETICAL = SPEEDUP_COLUMNS["theoretical"]  # on task tokens where recorded, like the accuracy beside it
WITHIN_POINTS = 1.0  # "as accurate as the full model" means losing at most this many points
MAX_EXAMPLES = 8


def describe_point(row: pd.Series) -> str:
    return f"`{row['family']}` at threshold {fmt(row['threshold'], 'g')}"


def change_interval(row: pd.Series) -> tuple[float, float] | None:
    """The 95% CI of the accuracy change in points, or None where the row has none."""
    low, high = row.get("acc_delta_ci95_low"), row.get("acc_delta_ci95_high")
    return None if is_missing(low) or is_missing(high) else (float(low), float(high))


def answer_flips(row: pd.Series) -> tuple[int, int] | None:
    """(examples early exit scored higher than the full model, lower), or None for results without them."""
    improved, worsened = row.get("acc_improved"), row.get("acc_worsened")
    return None if is_missing(improved) or is_missing(worsened) else (int(improved), int(worsened))


def accuracy_change(row: pd.Series) -> str:
    """'-1.0 points [95% CI -2.0 to +0.0; 2 examples better, 3 worse]', each part only where the row has it."""
    details = []
    if ci := change_interval(row):
        details.append(f"95% CI {ci[0]:+.1f} to {ci[1]:+.1f}")
    if flips := answer_flips(row):
        details.append(f"{flips[0]} examples better, {flips[1]} worse")
    return f"{fmt(row['acc_delta'], '+.1f')} points" + (f" [{'; '.join(details)}]" if details else "")


def mixed_hardware_note(frame: pd.DataFrame) -> str:
    """A warning when timings come from several devices or hosts; empty when they do not. Untimed points (theoretical
    speedup only) measured nothing on their hardware, so they never make a report mixed."""
    timed = timed_points(frame)
    if timed.empty:
        return ""
    devices, hosts, cpus = distinct(timed["device"]), distinct(timed["hostname"]), distinct(column(timed, "cpu_model"))
    if len(devices) <= 1 and len(hosts) <= 1 and len(cpus) <= 1:
        return ""
    return (
        f"**Timings come from different machines** (devices: {', '.join(devices) or '?'}; "
        f"hosts: {', '.join(hosts) or '?'}; CPUs: {', '.join(cpus) or '?'}). "
        "Compare measured speedups and tokens/s only within one device/host."
    )


def mixed_precision_note(frame: pd.DataFrame) -> str:
    """A warning when the points ran in more than one precision; empty when they did not."""
    dtypes = distinct(column(frame, "backbone_dtype"))
    if len(dtypes) <= 1:
        return ""
    return (
        f"**Points run in different precisions** ({', '.join(dtypes)}): each family and front holds one precision "
        "(labels carry dtype=), and accuracy or speed compares fairly only within one."
    )


MIXED_HARDWARE_CAPTION = (
    "⚠ Timings come from different devices/hosts: compare measured speedups and tokens/s only within one device@host."
)


def mixed_hardware_caption(frame: pd.DataFrame) -> str:
    """A short form of the mixed-hardware warning for table and figure captions ('' if not mixed)."""
    return f" {MIXED_HARDWARE_CAPTION}" if mixed_hardware_note(frame) else ""


def _smallest_loss(timed: pd.DataFrame, speedup: str) -> str:
    best = timed.loc[timed["acc_delta"].idxmax()]
    speed = speedup_text(best) if speedup == "measured_speedup" else f"{fmt(best[speedup], '.2f')}x"
    return (
        f"no configuration stays within {WITHIN_POINTS:g} point of the full model; the smallest "
        f"loss is {accuracy_change(best)} ({describe_point(best)}, {speed})."
    )


def _fastest_by_interval(close: pd.DataFrame, reference: str) -> str:
    """The fastest accurate configuration, or the set that the CIs cannot tell apart."""
    best = fastest(close)
    if len(best) > 1:
        listed = _examples(best, lambda r: f"{describe_point(r)} ({speedup_text(r)})")
        return (
            f"within {WITHIN_POINTS:g} point of the full model, {len(best)} configurations are the fastest and "
            f"**indistinguishable** (their 95% CIs overlap, so none is measurably faster): {listed}."
        )
    row = best.iloc[0]
    outcome = {
        NO_DIFFERENCE: f" — **{NO_DIFFERENCE}** from {reference} (the CI contains 1.0)",
        "slower": f" — measurably **slower** than {reference}",
    }.get(verdict(row), "")
    lead = (
        f"the only configuration within {WITHIN_POINTS:g} point of the full model"
        if len(close) == 1
        else f"the fastest configuration within {WITHIN_POINTS:g} point of the full model (its 95% CI lies above every other's)"
    )
    return (
        f"{lead} is {describe_point(row)}: {speedup_text(row)} measured speedup against {reference}, "
        f"accuracy change {accuracy_change(row)}{outcome}."
    )


def _fastest_within_tolerance(rows: pd.DataFrame, speedup: str, reference: str = "the full model") -> str:
    timed = rows.dropna(subset=[speedup, "acc_delta"])
    if timed.empty:
        return ""
    close = timed[timed["acc_delta"] >= -WITHIN_POINTS]
    if close.empty:
        return _smallest_loss(timed, speedup)
    if speedup == "measured_speedup" and has_intervals(close):
        return _fastest_by_interval(close, reference)
    best = close.loc[close[speedup].idxmax()]
    verdict_text = "" if best[speedup] > 1 else " — which is **not faster** than the full model"
    estimate = " (point estimates: these results carry no confidence intervals)" if speedup == "measured_speedup" else ""
    return (
        f"the fastest configuration within {WITHIN_POINTS:g} point of the full model is "
        f"{describe_point(best)}: {fmt(best[speedup], '.2f')}x {speedup.split('_')[0]} speedup{estimate}, "
        f"accuracy change {accuracy_change(best)}{verdict_text}."
    )


def _backbone_finding(backbone: str, rows: pd.DataFrame, reference: str) -> str:
    measured = _fastest_within_tolerance(rows, "measured_speedup", reference)
    if measured:
        text = f"**{backbone}**: {measured}"
    else:
        theoretical = _fastest_within_tolerance(rows, THEORETICAL)
        text = f"**{backbone}**: no measured timings with task accuracy; by theoretical speedup, " + (
            theoretical or "nothing to compare (no task accuracy recorded)."
        )
    paired = rows.dropna(subset=["measured_speedup", THEORETICAL])
    if not paired.empty:
        ratio = (paired["measured_speedup"] / paired[THEORETICAL]).median()
        text += f" Measured speedup is a median {ratio:.0%} of the theoretical speedup"
        text += (
            ", i.e. faster than the cost model allows: suspect timing noise (see the min–max "
            "range) or a mismatch between what the two measure."
            if ratio > 1.05
            else "."
        )
    return text


def _examples(rows: pd.DataFrame, describe=describe_point) -> str:
    text = "; ".join(describe(row) for _, row in rows.head(MAX_EXAMPLES).iterrows())
    return text + (f"; and {len(rows) - MAX_EXAMPLES} more" if len(rows) > MAX_EXAMPLES else "")


def _verdict_counts(timed: pd.DataFrame, reference: str) -> str:
    """Timed points sorted by what their CI says against the reference."""
    verdicts = timed.apply(verdict, axis=1)
    parts = []
    for outcome, wording in (
        ("slower", "**measurably slower**"),
        (NO_DIFFERENCE, f"**{NO_DIFFERENCE}** (CI contains 1.0)"),
        ("faster", "measurably faster"),
    ):
        chosen = timed[verdicts == outcome]
        if not chosen.empty:
            listed = "" if outcome == "faster" else ": " + _examples(chosen, lambda r: f"{describe_point(r)} ({speedup_text(r)})")
            parts.append(f"{len(chosen)} {wording}{listed}")
    return f"Against {reference}, of {len(timed)} timed points: " + "; ".join(parts) + "."


def _slower_than_full(frame: pd.DataFrame, reference: str = "the full model") -> str:
    timed = frame.dropna(subset=["measured_speedup"])
    if timed.empty:
        return "No point has a measured speedup (timing was disabled or failed), so real speed is unknown."
    if has_intervals(timed):
        return _verdict_counts(timed, reference)
    slower = timed[timed["measured_speedup"] < 1.0]
    if slower.empty:
        return f"No timed point is slower than the full model (all {len(timed)} have measured speedup ≥ 1)."
    examples = _examples(slower, lambda r: f"{describe_point(r)} ({fmt(r['measured_speedup'], '.2f')}x)")
    return f"**{len(slower)} of {len(timed)} timed points are slower than the full model** (measured speedup < 1): {examples}."


def _caveats(frame: pd.DataFrame) -> list[str]:
    """Data-quality warnings worth stating plainly next to the headline numbers."""
    notes = []
    # A min–max range over repeats is the only noise measure of results without a CI.
    without_ci = frame[column(frame, "speedup_ci_lo").isna()]
    noisy = without_ci[(without_ci["speedup_min"] < 1.0) & (without_ci["speedup_max"] > 1.0)]
    if not noisy.empty:
        notes.append(
            f"{len(noisy)} timed point(s) have a measured min–max range spanning 1x, so timing "
            f"cannot distinguish them from the full model: {_examples(noisy)}."
        )
    exact = frame[column(frame, "accuracy_decoder") == "exact_kv"]
    if not exact.empty:
        notes.append(
            f"{len(exact)} point(s) decode with `copy` or `skip`, whose KV differs from full-depth decoding: their "
            "task accuracy is exact-KV accuracy (teacher-forced, every block running), not their own, so they "
            f"are kept off the backbone fronts: {_examples(exact)}."
        )
    verified = frame[column(frame, "accuracy_decoder") == "verified_full_model"]
    if not verified.empty:
        notes.append(
            f"{len(verified)} point(s) decode with DSSD, which emits only tokens the full model verified: their "
            f"accuracy is the full model's, so their accuracy change is 0 by construction: {_examples(verified)}."
        )
    costly = frame[frame[THEORETICAL] < 1.0]
    if not costly.empty:
        notes.append(
            f"{len(costly)} point(s) have theoretical speedup below 1 (by the cost model they do "
            f"more work than the full model): {_examples(costly)}."
        )
    return notes


def calibration_misses(frame: pd.DataFrame) -> str:
    """Every point with a head whose held-out exited tokens fell below the agreement target."""
    misses = column(frame, "calibration_misses")
    missed = frame[misses.notna() & (misses.astype(str) != "")]
    if missed.empty:
        return ""
    listed = "; ".join(
        f"{describe_point(row)} (target {fmt(row['threshold'], 'g')}): {row['calibration_misses']}"
        for _, row in missed.head(MAX_EXAMPLES).iterrows()
    )
    more = f"; and {len(missed) - MAX_EXAMPLES} more" if len(missed) > MAX_EXAMPLES else ""
    return (
        f"**{len(missed)} point(s) miss their calibration target on held-out documents** (agreement with the "
        f"full model of the tokens a head let exit, below the target): {listed}{more}."
    )


def measurement_errors(frame: pd.DataFrame) -> list[str]:
    """One line per point whose timing was flagged: stated as an error, kept out of every finding."""
    bad = frame[flagged(frame)]
    return [
        f"{describe_point(row)}: measured {fmt(row['measured_speedup'], '.2f')}x — {row['timing_flags']}"
        for _, row in bad.iterrows()
    ]


def findings_items(frame: pd.DataFrame, skipped_count: int) -> list[str]:
    """The Findings bullets, empty when no run completed. Points with flagged timings are left out."""
    if frame.empty:
        return []
    trusted = frame[~flagged(frame)]
    reference = reference_short(frame)
    # Exact-KV accuracy is not a copy/skip point's own, so such points are not ranked (see _caveats).
    ranked = trusted[column(trusted, "accuracy_decoder") != "exact_kv"]
    items = [_backbone_finding(backbone, rows, reference) for backbone, rows in ranked.groupby("backbone", sort=True)]
    items += [_slower_than_full(trusted, reference)] + _caveats(trusted)
    missed = calibration_misses(frame)
    items += [missed] if missed else []
    items += [note for note in (mixed_hardware_note(frame), mixed_precision_note(frame)) if note]
    if skipped_count:
        items.append(f"{skipped_count} point(s) were skipped or failed and are not in these numbers.")
    return items


def findings_section(frame: pd.DataFrame, skipped_count: int) -> list:
    items = findings_items(frame, skipped_count)
    if not items:
        return [Heading("Findings"), Paragraph("No complete runs, so there is nothing to conclude; see *Skipped* below.")]
    blocks = [Heading("Findings"), Bullets(items)]
    errors = measurement_errors(frame)
    if errors:
        blocks += [
            Paragraph(
                f"**Measurement errors** ({len(errors)} point(s)): their timing failed a sanity check, so "
                "their measured speedups are not findings and are left out of everything above."
            ),
            Bullets(errors),
        ]
    return blocks
