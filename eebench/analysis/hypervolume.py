"""2-D hypervolume of accuracy-change vs speedup fronts: one number per family (and per backbone).

The hypervolume is the area that a set of points dominates (maximising both speedup and accuracy
change) above a reference point. Units are "speedup x times accuracy points".

Reference point: speedup 1.0 (no gain: slower points add nothing) and an accuracy change of the
worst change in the compared frame minus ``REFERENCE_MARGIN_POINTS``. One shared reference makes
the numbers of all families in one report comparable; the margin gives the worst point some area
(with the worst point itself as the reference, a sweep where nothing changes accuracy would score 0).
Numbers from different reports are not comparable, since the reference depends on the worst point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from eebench.analysis.pareto import FRONT_SCOPES, SPEEDUP_COLUMNS

REFERENCE_SPEEDUP = 1.0
REFERENCE_MARGIN_POINTS = 1.0


def hypervolume_2d(points: Iterable[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (x, y both maximised) and bounded below-left by ``reference``.

    Points with NaN, or not strictly better than the reference in both coordinates, add nothing.
    """
    ref_x, ref_y = reference
    useful = sorted(((x, y) for x, y in points if not (math.isnan(x) or math.isnan(y)) and x > ref_x and y > ref_y), reverse=True)
    # Sweep from the fastest point: each point adds the strip between the best accuracy seen so far
    # (among faster points) and its own, across its whole width back to the reference speedup.
    area, best_y = 0.0, ref_y
    for x, y in useful:
        if y > best_y:
            area += (x - ref_x) * (y - best_y)
            best_y = y
    return area


def reference_point(frame: pd.DataFrame) -> tuple[float, float]:
    """(speedup, accuracy change) reference shared by every group of ``frame``; see module doc."""
    deltas = frame["acc_delta"].dropna() if "acc_delta" in frame else pd.Series(dtype=float)
    worst = float(deltas.min()) if not deltas.empty else 0.0
    return REFERENCE_SPEEDUP, worst - REFERENCE_MARGIN_POINTS


def _group_hypervolumes(group: pd.DataFrame, scope: str, reference_delta: float) -> dict[str, float]:
    volumes = {}
    for kind, speedup in SPEEDUP_COLUMNS.items():
        points = zip(group[speedup].astype(float), group["acc_delta"].astype(float))
        volumes[f"hv_{kind}"] = hypervolume_2d(points, (REFERENCE_SPEEDUP, reference_delta))
        flags = f"{FRONT_SCOPES[scope]}_{kind}"  # present once add_pareto_flags has run
        volumes[f"front_{kind}"] = int(group[flags].sum()) if flags in group else 0
    return volumes


def hypervolume_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per family and one per backbone: hypervolume and front size for both speedup kinds."""
    columns = [
        "scope",
        "name",
        "points",
        "hv_measured",
        "hv_theoretical",
        "front_measured",
        "front_theoretical",
        "reference_speedup",
        "reference_acc_delta",
    ]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    _, reference_delta = reference_point(frame)
    rows = []
    for scope in ("family", "backbone"):
        for name, group in frame.groupby(scope, sort=True):
            rows.append(
                {
                    "scope": scope,
                    "name": name,
                    "points": len(group),
                    **_group_hypervolumes(group, scope, reference_delta),
                    "reference_speedup": REFERENCE_SPEEDUP,
                    "reference_acc_delta": reference_delta,
                }
            )
    return pd.DataFrame(rows, columns=columns)
