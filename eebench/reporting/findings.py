"""The generated Findings: every sentence is computed from the numbers in the summary frame."""
from __future__ import annotations

import pandas as pd

from eebench.reporting.document import Bullets, Heading, Paragraph
from eebench.reporting.formatting import distinct, fmt

WITHIN_POINTS = 1.0  # "as accurate as the full model" means losing at most this many points
MAX_EXAMPLES = 8


def describe_point(row: pd.Series) -> str:
    return f"`{row['family']}` at threshold {fmt(row['threshold'], 'g')}"


def mixed_hardware_note(frame: pd.DataFrame) -> str:
    """A warning when timings come from several devices or hosts; empty when they do not."""
    if frame.empty:
        return ""
    devices, hosts = distinct(frame["device"]), distinct(frame["hostname"])
    if len(devices) <= 1 and len(hosts) <= 1:
        return ""
    return (
        f"**Timings come from different machines** (devices: {', '.join(devices) or '?'}; "
        f"hosts: {', '.join(hosts) or '?'}). Compare measured speedups and tokens/s only within one device/host."
    )


MIXED_HARDWARE_CAPTION = ("⚠ Timings come from different devices/hosts: compare measured speedups and "
                          "tokens/s only within one device@host.")


def mixed_hardware_caption(frame: pd.DataFrame) -> str:
    """A short form of the mixed-hardware warning for table and figure captions ('' if not mixed)."""
    return f" {MIXED_HARDWARE_CAPTION}" if mixed_hardware_note(frame) else ""


def _fastest_within_tolerance(rows: pd.DataFrame, speedup: str) -> str:
    timed = rows.dropna(subset=[speedup, "acc_delta"])
    if timed.empty:
        return ""
    close = timed[timed["acc_delta"] >= -WITHIN_POINTS]
    if close.empty:
        best = timed.loc[timed["acc_delta"].idxmax()]
        return (f"no configuration stays within {WITHIN_POINTS:g} point of the full model; the smallest "
                f"loss is {fmt(best['acc_delta'], '+.1f')} points ({describe_point(best)}, "
                f"{fmt(best[speedup], '.2f')}x).")
    best = close.loc[close[speedup].idxmax()]
    verdict = "" if best[speedup] > 1 else " — which is **not faster** than the full model"
    return (f"the fastest configuration within {WITHIN_POINTS:g} point of the full model is "
            f"{describe_point(best)}: {fmt(best[speedup], '.2f')}x {speedup.split('_')[0]} speedup, "
            f"accuracy change {fmt(best['acc_delta'], '+.1f')} points{verdict}.")


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


def _examples(rows: pd.DataFrame, describe=describe_point) -> str:
    text = "; ".join(describe(row) for _, row in rows.head(MAX_EXAMPLES).iterrows())
    return text + (f"; and {len(rows) - MAX_EXAMPLES} more" if len(rows) > MAX_EXAMPLES else "")


def _slower_than_full(frame: pd.DataFrame) -> str:
    timed = frame.dropna(subset=["measured_speedup"])
    if timed.empty:
        return "No point has a measured speedup (timing was disabled or failed), so real speed is unknown."
    slower = timed[timed["measured_speedup"] < 1.0]
    if slower.empty:
        return f"No timed point is slower than the full model (all {len(timed)} have measured speedup ≥ 1)."
    examples = _examples(slower, lambda r: f"{describe_point(r)} ({fmt(r['measured_speedup'], '.2f')}x)")
    return (f"**{len(slower)} of {len(timed)} timed points are slower than the full model** "
            f"(measured speedup < 1): {examples}.")


def _caveats(frame: pd.DataFrame) -> list[str]:
    """Data-quality warnings worth stating plainly next to the headline numbers."""
    notes = []
    noisy = frame[(frame["speedup_min"] < 1.0) & (frame["speedup_max"] > 1.0)]
    if not noisy.empty:
        notes.append(f"{len(noisy)} timed point(s) have a measured min–max range spanning 1x, so timing "
                     f"cannot distinguish them from the full model: {_examples(noisy)}.")
    costly = frame[frame["theoretical_speedup"] < 1.0]
    if not costly.empty:
        notes.append(f"{len(costly)} point(s) have theoretical speedup below 1 (by the cost model they do "
                     f"more work than the full model): {_examples(costly)}.")
    return notes


def findings_items(frame: pd.DataFrame, skipped_count: int) -> list[str]:
    """The Findings bullets, empty when no run completed."""
    if frame.empty:
        return []
    items = [_backbone_finding(backbone, rows) for backbone, rows in frame.groupby("backbone", sort=True)]
    items += [_slower_than_full(frame)] + _caveats(frame)
    hardware = mixed_hardware_note(frame)
    items += [hardware] if hardware else []
    if skipped_count:
        items.append(f"{skipped_count} point(s) were skipped or failed and are not in these numbers.")
    return items


def findings_section(frame: pd.DataFrame, skipped_count: int) -> list:
    items = findings_items(frame, skipped_count)
    if not items:
        return [Heading("Findings"),
                Paragraph("No complete runs, so there is nothing to conclude; see *Skipped* below.")]
    return [Heading("Findings"), Bullets(items)]
