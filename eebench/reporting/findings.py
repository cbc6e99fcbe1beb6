"""The generated Findings: every sentence is computed from the numbers in the summary frame.

They open with the answer, per backbone: the fastest configuration whose paired accuracy change is within
``WITHIN_POINTS`` of the full model, with its speedup CI (measured where timed, else theoretical) and its accuracy
change; then the few facts that qualify it, at most ``MAX_BULLETS`` bullets in all. A list longer than
``MAX_INLINE`` points is not spelled out in its bullet: the bullet counts it and names the table below that holds it.
"""

from __future__ import annotations

import pandas as pd

from eebench.analysis.pareto import SPEEDUP_COLUMNS
from eebench.reporting.calibration_findings import calibration_misses, calibration_share
from eebench.reporting.comparability import mixed_hardware_note, mixed_precision_note
from eebench.reporting.document import Bullets, Heading, Paragraph, Table
from eebench.reporting.formatting import fmt, is_missing
from eebench.reporting.listings import MAX_INLINE, Listings, describe_point, point_columns
from eebench.reporting.speed import (
    NO_DIFFERENCE,
    column,
    fastest,
    flagged,
    has_intervals,
    reference_short,
    speedup_text,
    verdict,
)

THEORETICAL = SPEEDUP_COLUMNS["theoretical"]  # on task tokens where recorded, like the accuracy beside it
WITHIN_POINTS = 1.0  # "as accurate as the full model" means losing at most this many points
MAX_ANSWER_BULLETS = 3  # backbones answered in a bullet each; more share one bullet and a table
MAX_BULLETS = 10  # what a reader takes in at a glance; findings_items never returns more


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


def _change_cell(row: pd.Series) -> str:
    ci = change_interval(row)
    return fmt(row["acc_delta"], "+.1f") + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")


def _speed_and_change(row: pd.Series) -> str:
    return f"{describe_point(row)} ({speedup_text(row)}, accuracy change {accuracy_change(row)})"


def _candidates(speedup: str) -> str:
    """What a sentence ranks: only timed points have a measured speedup, and untimed ones may be closer."""
    return "timed configuration" if speedup == "measured_speedup" else "configuration"


def _smallest_loss(timed: pd.DataFrame, speedup: str) -> str:
    best = timed.loc[timed["acc_delta"].idxmax()]
    speed = speedup_text(best) if speedup == "measured_speedup" else f"{fmt(best[speedup], '.2f')}x"
    return (
        f"no {_candidates(speedup)} stays within {WITHIN_POINTS:g} point of the full model; the smallest "
        f"loss is {accuracy_change(best)} ({describe_point(best)}, {speed})."
    )


def _set_verdict(rows: pd.DataFrame, reference: str) -> str:
    """What the CIs of an indistinguishable set say against the reference, where they all agree."""
    verdicts = set(rows.apply(verdict, axis=1))
    if verdicts == {"slower"}:
        return f" Each is measurably **slower** than {reference}."
    return "" if "faster" in verdicts else f" None is measurably faster than {reference}."


def _fastest_by_interval(close: pd.DataFrame, reference: str, backbone: str, listings: Listings) -> str:
    """The fastest accurate configuration, or the set that the CIs cannot tell apart."""
    best = fastest(close)
    if len(best) > 1:
        best = best.sort_values("measured_speedup", ascending=False)
        columns = point_columns({"measured speedup [95% CI]": speedup_text, "Δ pts [95% CI]": _change_cell})
        title = f"Fastest within {WITHIN_POINTS:g} point of the full model, indistinguishable by their CIs"
        listed = listings.points(best, _speed_and_change, title, columns)
        return (
            f"within {WITHIN_POINTS:g} point of the full model, {len(best)} timed configurations are the fastest and "
            f"**indistinguishable** (their 95% CIs overlap, so none is measurably faster): {listed}."
            + _set_verdict(best, reference)
        )
    row = best.iloc[0]
    outcome = {
        NO_DIFFERENCE: f" — **{NO_DIFFERENCE}** from {reference} (the CI contains 1.0)",
        "slower": f" — measurably **slower** than {reference}",
    }.get(verdict(row), "")
    lead = (
        f"the only timed configuration within {WITHIN_POINTS:g} point of the full model"
        if len(close) == 1
        else f"the fastest timed configuration within {WITHIN_POINTS:g} point of the full model "
        "(its 95% CI lies above every other's)"
    )
    return (
        f"{lead} is {describe_point(row)}: {speedup_text(row)} measured speedup against {reference}, "
        f"accuracy change {accuracy_change(row)}{outcome}."
    )


def _kind(speedup: str) -> str:
    """'measured' or 'theoretical': the word a sentence uses for a speedup column."""
    return next(kind for kind, name in SPEEDUP_COLUMNS.items() if name == speedup)


def _fastest_within_tolerance(
    rows: pd.DataFrame, speedup: str, listings: Listings, backbone: str, reference: str = "the full model"
) -> str:
    timed = rows.dropna(subset=[speedup, "acc_delta"])
    if timed.empty:
        return ""
    close = timed[timed["acc_delta"] >= -WITHIN_POINTS]
    if close.empty:
        return _smallest_loss(timed, speedup)
    if speedup == "measured_speedup" and has_intervals(close):
        return _fastest_by_interval(close, reference, backbone, listings)
    best = close.loc[close[speedup].idxmax()]
    verdict_text = "" if best[speedup] > 1 else " — which is **not faster** than the full model"
    estimate = " (point estimates: these results carry no confidence intervals)" if speedup == "measured_speedup" else ""
    return (
        f"the fastest {_candidates(speedup)} within {WITHIN_POINTS:g} point of the full model is "
        f"{describe_point(best)}: {fmt(best[speedup], '.2f')}x {_kind(speedup)} speedup{estimate}, "
        f"accuracy change {accuracy_change(best)}{verdict_text}."
    )


def backbone_answer(backbone: str, rows: pd.DataFrame, reference: str, listings: Listings) -> str:
    """The answer for one backbone: by measured speedup where points were timed (and, when others were not, the
    best of those by the cost model), else by theoretical speedup, saying so."""
    measured = _fastest_within_tolerance(rows, "measured_speedup", listings, backbone, reference)
    if measured:
        text = measured
        untimed = rows[column(rows, "measured_speedup").isna()]
        if theoretical := _fastest_within_tolerance(untimed, THEORETICAL, listings, backbone):
            text += (
                f" Of the {len(untimed)} untimed points, by theoretical speedup (the cost model's, not measured): {theoretical}"
            )
    else:
        theoretical = _fastest_within_tolerance(rows, THEORETICAL, listings, backbone)
        text = "no measured timings with task accuracy; by theoretical speedup, " + (
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


def _answers(ranked: pd.DataFrame, reference: str, listings: Listings) -> list[str]:
    """A bullet per backbone, or, for more than MAX_ANSWER_BULLETS backbones, one bullet and a table of answers."""
    answers = [
        (backbone, backbone_answer(backbone, rows, reference, listings))
        for backbone, rows in ranked.groupby("backbone", sort=True)
    ]
    if len(answers) <= MAX_ANSWER_BULLETS:
        return [f"**{backbone}**: {answer}" for backbone, answer in answers]
    title = f"Fastest within {WITHIN_POINTS:g} point of the full model, per backbone"
    listings.answers([[backbone, answer] for backbone, answer in answers], title)
    return [f"**{len(answers)} backbones**: each one's answer is in *{title}* below."]


def _verdict_counts(timed: pd.DataFrame, reference: str, listings: Listings) -> str:
    """Timed points counted by what their CI says against the reference; few are named, many go to a table."""
    verdicts = timed.apply(verdict, axis=1)
    wordings = {
        "slower": "**measurably slower**",
        NO_DIFFERENCE: f"**{NO_DIFFERENCE}** (CI contains 1.0)",
        "faster": "measurably faster",
    }
    inline = len(timed) <= MAX_INLINE
    parts = []
    for outcome, wording in wordings.items():
        chosen = timed[verdicts == outcome]
        if not chosen.empty:
            listed = ": " + "; ".join(f"{describe_point(r)} ({speedup_text(r)})" for _, r in chosen.iterrows())
            parts.append(f"{len(chosen)} {wording}" + (listed if inline and outcome != "faster" else ""))
    counted = f"{len(timed)} timed point" + ("s" if len(timed) != 1 else "")
    text = f"Against {reference}, of {counted}: " + "; ".join(parts)
    if not inline:
        columns = point_columns(
            {
                "measured speedup [95% CI]": speedup_text,
                "against the reference": lambda row: verdict(row) or "–",
                "Δ pts [95% CI]": _change_cell,
            }
        )
        text += " (" + listings.points(timed, describe_point, f"Timed points against {reference}", columns) + ")"
    return text + "."


def _min_max_cell(row: pd.Series) -> str:
    return f"{fmt(row['measured_speedup'], '.2f')} ({fmt(row['speedup_min'], '.2f')}–{fmt(row['speedup_max'], '.2f')})"


def _slower_than_full(frame: pd.DataFrame, listings: Listings, reference: str = "the full model") -> str:
    timed = frame.dropna(subset=["measured_speedup"])
    if timed.empty:
        return "No point has a measured speedup (timing was disabled or failed), so real speed is unknown."
    if has_intervals(timed):
        return _verdict_counts(timed, reference, listings)
    slower = timed[timed["measured_speedup"] < 1.0]
    text = (
        f"No timed point is slower than the full model (all {len(timed)} have measured speedup ≥ 1)."
        if slower.empty
        else f"**{len(slower)} of {len(timed)} timed points are slower than the full model** (measured speedup < 1): "
        + listings.points(
            slower,
            lambda r: f"{describe_point(r)} ({fmt(r['measured_speedup'], '.2f')}x)",
            "Timed points slower than the full model",
            point_columns({"measured speedup": lambda row: fmt(row["measured_speedup"], ".2f")}),
        )
        + "."
    )
    # A min–max range over repeats is the only noise measure of results without a CI.
    without_ci = timed[column(timed, "speedup_ci_lo").isna()]
    noisy = without_ci[(without_ci["speedup_min"] < 1.0) & (without_ci["speedup_max"] > 1.0)]
    if not noisy.empty:
        listed = listings.points(
            noisy,
            describe_point,
            "Timed points whose min–max spans 1x",
            point_columns({"measured speedup (min–max)": _min_max_cell}),
        )
        text += (
            f" {len(noisy)} timed point(s) have a measured min–max range spanning 1x, so timing "
            f"cannot distinguish them from the full model: {listed}."
        )
    return text


def _by_family(points: pd.DataFrame) -> pd.DataFrame:
    """One row per family: its thresholds and the range of its theoretical speedups (a table of many points)."""
    rows = []
    for family, group in points.groupby("family", sort=False):
        low, high = group[THEORETICAL].min(), group[THEORETICAL].max()
        rows.append(
            {
                "family": family,
                "thresholds": ", ".join(fmt(t, "g") for t in group["threshold"]),
                # Three decimals: at two, a point just below 1 would read "1.00" in a list of points below 1.
                "range": fmt(low, ".3f") if f"{low:.3f}" == f"{high:.3f}" else f"{low:.3f}–{high:.3f}",
            }
        )
    return pd.DataFrame(rows)


def _costly(frame: pd.DataFrame, listings: Listings) -> str:
    costly = frame[frame[THEORETICAL] < 1.0]
    if costly.empty:
        return ""
    title = "Points with theoretical speedup below 1"
    if len(costly) <= MAX_INLINE:
        listed = "; ".join(describe_point(row) for _, row in costly.iterrows())
    else:
        families = _by_family(costly)
        cells = [[row["family"], row["thresholds"], row["range"]] for _, row in families.iterrows()]
        listings.tables.append(Table(["configuration", "thresholds", "theor. speedup"], cells, title=title))
        listed = f"{len(families)} configuration(s), listed in *{title}* below"
    return (
        f"{len(costly)} point(s) have theoretical speedup below 1 (by the cost model they do "
        f"more work than the full model): {listed}."
    )


def _caveats(frame: pd.DataFrame, listings: Listings) -> list[str]:
    """Data-quality warnings worth stating plainly next to the headline numbers."""
    notes = []
    exact = frame[column(frame, "accuracy_decoder") == "exact_kv"]
    if not exact.empty:
        listed = listings.points(exact, describe_point, "Points scored with exact-KV accuracy", point_columns())
        notes.append(
            f"{len(exact)} point(s) decode with `copy` or `skip`, whose KV differs from full-depth decoding: their "
            "task accuracy is exact-KV accuracy (teacher-forced, every block running), not their own, so they "
            f"are kept off the backbone fronts: {listed}."
        )
    verified = frame[column(frame, "accuracy_decoder") == "verified_full_model"]
    if not verified.empty:
        listed = listings.points(verified, describe_point, "Points decoded with DSSD", point_columns())
        notes.append(
            f"{len(verified)} point(s) decode with DSSD, which emits only tokens the full model verified: their "
            f"accuracy is the full model's, so their accuracy change is 0 by construction: {listed}."
        )
    costly = _costly(frame, listings)
    return notes + ([costly] if costly else [])


def measurement_errors(frame: pd.DataFrame) -> list[str]:
    """One line per point whose timing was flagged: stated as an error, kept out of every finding."""
    bad = frame[flagged(frame)]
    return [
        f"{describe_point(row)}: measured {fmt(row['measured_speedup'], '.2f')}x — {row['timing_flags']}"
        for _, row in bad.iterrows()
    ]


def findings_content(frame: pd.DataFrame, skipped_count: int) -> tuple[list[str], list[Table]]:
    """The Findings bullets (at most MAX_BULLETS; none when no run completed) and the tables they point to.
    Points with flagged timings are left out."""
    listings = Listings()
    if frame.empty:
        return [], []
    trusted = frame[~flagged(frame)]
    reference = reference_short(frame)
    # Exact-KV accuracy is not a copy/skip point's own, so such points are not ranked (see _caveats).
    ranked = trusted[column(trusted, "accuracy_decoder") != "exact_kv"]
    items = _answers(ranked, reference, listings)
    items += [_slower_than_full(trusted, listings, reference)] + _caveats(trusted, listings)
    items += [note for note in (calibration_share(frame), calibration_misses(frame, listings)) if note]
    mixed = " ".join(note for note in (mixed_hardware_note(frame), mixed_precision_note(frame)) if note)
    items += [mixed] if mixed else []
    if skipped_count:
        items.append(f"{skipped_count} point(s) were skipped or failed and are not in these numbers.")
    return items, listings.tables


def findings_items(frame: pd.DataFrame, skipped_count: int) -> list[str]:
    """The Findings bullets alone (see ``findings_content``)."""
    return findings_content(frame, skipped_count)[0]


def findings_section(frame: pd.DataFrame, skipped_count: int) -> list:
    items, tables = findings_content(frame, skipped_count)
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
    return blocks + tables
