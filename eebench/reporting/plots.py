"""Pareto figure: accuracy change vs measured and vs theoretical speedup, one colour/marker per family.

Uses ``Figure`` with the Agg canvas directly rather than pyplot, so it works headless and never
touches (or is broken by) a global backend chosen elsewhere in the process.
"""
from __future__ import annotations

from itertools import cycle
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eebench.analysis.pareto import SPEEDUP_COLUMNS

# Nine markers against ten colours: the periods are coprime, so 90 families get distinct pairs.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", "*")
PANEL_TITLES = {
    "measured": "Accuracy change vs measured speedup",
    "theoretical": "Accuracy change vs theoretical speedup (layers skipped)",
}


def _family_styles(families: list[str]) -> dict[str, dict]:
    colours = [f"C{i}" for i in range(10)]
    return {
        family: {"color": colour, "marker": marker}
        for family, colour, marker in zip(families, cycle(colours), cycle(MARKERS))
    }


def _draw_reference_lines(ax) -> None:
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, zorder=0)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, zorder=0)


def _label_thresholds(ax, points: pd.DataFrame, speedup: str) -> None:
    for _, point in points.iterrows():
        ax.annotate(
            f"{point['threshold']:g}", (point[speedup], point["acc_delta"]),
            textcoords="offset points", xytext=(4, 4), fontsize=7,
        )


def _draw_family(ax, points: pd.DataFrame, kind: str, style: dict, label: str) -> None:
    speedup = SPEEDUP_COLUMNS[kind]
    points = points.dropna(subset=[speedup, "acc_delta"])
    if points.empty:
        return
    ax.scatter(points[speedup], points["acc_delta"], label=label, alpha=0.85, **style)
    front = points[points[f"pareto_{kind}"]].sort_values(speedup)
    ax.plot(front[speedup], front["acc_delta"], color=style["color"], linewidth=1.2)
    _label_thresholds(ax, points, speedup)


def _draw_panel(ax, frame: pd.DataFrame, kind: str, styles: dict[str, dict]) -> None:
    speedup = SPEEDUP_COLUMNS[kind]
    _draw_reference_lines(ax)
    for family, points in frame.groupby("family", sort=False):
        _draw_family(ax, points, kind, styles[family], family)
    has_points = not frame.empty and frame[[speedup, "acc_delta"]].notna().all(axis=1).any()
    if not has_points:
        ax.text(0.5, 0.5, f"no runs with {kind} speedup and task accuracy", ha="center",
                va="center", transform=ax.transAxes, color="grey")
    else:
        ax.legend(fontsize=7, loc="best")
    ax.set_title(PANEL_TITLES[kind], fontsize=10)
    ax.set_xlabel(f"{kind} speedup (x, >1 is faster than the full model)")
    ax.set_ylabel("accuracy change vs full model (points)")
    ax.grid(True, alpha=0.3)


def plot_pareto(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the two-panel Pareto PNG; needs the pareto_* flags from ``add_pareto_flags``."""
    path = Path(path)
    figure = Figure(figsize=(13, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    styles = _family_styles(list(dict.fromkeys(frame["family"]))) if not frame.empty else {}
    for ax, kind in zip(figure.subplots(1, 2), SPEEDUP_COLUMNS):
        _draw_panel(ax, frame, kind, styles)
    figure.suptitle("Early exit: accuracy vs speedup (labels: target agreement threshold)")
    figure.savefig(path, dpi=120)
    return path
