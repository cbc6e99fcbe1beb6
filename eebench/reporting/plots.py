"""Pareto figures (accuracy change vs measured and theoretical speedup) and shared plotting helpers.

Uses ``Figure`` with the Agg canvas directly rather than pyplot, so it works headless and never
touches (or is broken by) a global backend chosen elsewhere in the process.
"""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eebench.analysis.pareto import SPEEDUP_COLUMNS
from eebench.files import atomic_target
from eebench.reporting.formatting import exit_label_order
from eebench.reporting.speed import flagged

# Nine markers against ten colours: the periods are coprime, so 90 families get distinct pairs.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", "*")
PANEL_TITLES = {
    "measured": "Accuracy change vs measured speedup",
    "theoretical": "Accuracy change vs theoretical speedup (layers skipped)",
}
DPI = 120
FINAL_COLOUR = "#4d4d4d"  # the full model: neutral grey, so the coloured exits stand out


def new_figure(width: float, height: float, constrained: bool = True) -> Figure:
    """A figure on its own Agg canvas; ``constrained=False`` for pages placed by hand (the PDF)."""
    figure = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_target(path) as tmp:  # a failed write never leaves a truncated picture the report links to
        figure.savefig(tmp, dpi=DPI, format=path.suffix.lstrip("."))
    return path


def say_no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey", wrap=True)


def family_styles(families: list[str]) -> dict[str, dict]:
    colours = [f"C{i}" for i in range(10)]
    return {
        family: {"color": colour, "marker": marker} for family, colour, marker in zip(families, cycle(colours), cycle(MARKERS))
    }


def exit_colours(labels) -> dict[str, str]:
    """Colour per exit label (block numbers, then "final"), shared by histograms and the token view.

    Early blocks are dark and later ones light along viridis; the full model is grey.
    """
    labels = [str(label) for label in labels]  # may be a generator: it is read twice below
    layers = sorted({str(label) for label in labels if str(label).isdigit()}, key=exit_label_order)
    colormap = matplotlib.colormaps["viridis"]
    span = max(len(layers) - 1, 1)
    colours = {layer: matplotlib.colors.to_hex(colormap(0.9 * i / span)) for i, layer in enumerate(layers)}
    colours.update({str(label): FINAL_COLOUR for label in labels if not str(label).isdigit()})
    return colours


def _draw_reference_lines(ax) -> None:
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, zorder=0)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, zorder=0)


def _label_thresholds(ax, points: pd.DataFrame, speedup: str) -> None:
    for _, point in points.iterrows():
        ax.annotate(
            f"{point['threshold']:g}",
            (point[speedup], point["acc_delta"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )


def speed_errors(points: pd.DataFrame, kind: str) -> np.ndarray | None:
    """[[below], [above]] the measured speedup to its 95% CI bounds (0 where none was recorded), or None
    when no point has one; theoretical speedups are computed, not measured, so they have none."""
    if kind != "measured" or "speedup_ci_lo" not in points or points["speedup_ci_lo"].isna().all():
        return None
    speedup = points[SPEEDUP_COLUMNS[kind]]
    return np.vstack([(speedup - points["speedup_ci_lo"]).fillna(0.0), (points["speedup_ci_hi"] - speedup).fillna(0.0)])


def _draw_family(ax, points: pd.DataFrame, kind: str, style: dict, label: str) -> None:
    speedup = SPEEDUP_COLUMNS[kind]
    points = points.dropna(subset=[speedup, "acc_delta"])
    if points.empty:
        return
    ax.scatter(points[speedup], points["acc_delta"], label=label, alpha=0.85, zorder=3, **style)
    yerr = points["acc_delta_se"] if "acc_delta_se" in points and points["acc_delta_se"].notna().any() else None
    xerr = speed_errors(points, kind)
    if yerr is not None or xerr is not None:
        ax.errorbar(
            points[speedup],
            points["acc_delta"],
            xerr=xerr,
            yerr=yerr,
            fmt="none",
            ecolor=style["color"],
            alpha=0.45,
            capsize=2,
            linewidth=1,
            zorder=2,
        )
    front = points[points[f"pareto_{kind}"]].sort_values(speedup)
    ax.plot(front[speedup], front["acc_delta"], color=style["color"], linewidth=1.2)
    _label_thresholds(ax, points, speedup)


def _draw_backbone_fronts(ax, frame: pd.DataFrame, kind: str) -> None:
    speedup, flags = SPEEDUP_COLUMNS[kind], f"pareto_backbone_{kind}"
    if flags not in frame:
        return
    for number, (_, group) in enumerate(frame.groupby("backbone", sort=True)):
        front = group[group[flags]].dropna(subset=[speedup, "acc_delta"]).sort_values(speedup)
        ax.plot(
            front[speedup],
            front["acc_delta"],
            color="black",
            linestyle=":",
            linewidth=2,
            label="backbone front" if number == 0 else None,
            zorder=1,
        )


def _mark_measurement_errors(ax, frame: pd.DataFrame, kind: str) -> None:
    """Ring the points whose timing was flagged, so a reader does not take their speed at face value."""
    speedup = SPEEDUP_COLUMNS[kind]
    bad = frame[flagged(frame)].dropna(subset=[speedup, "acc_delta"])
    if kind == "measured" and not bad.empty:
        ax.scatter(
            bad[speedup],
            bad["acc_delta"],
            s=160,
            facecolors="none",
            edgecolors="red",
            linewidths=1.5,
            label="measurement error (flagged)",
            zorder=4,
        )


def _draw_panel(ax, frame: pd.DataFrame, kind: str, styles: dict[str, dict], backbone_front: bool) -> None:
    speedup = SPEEDUP_COLUMNS[kind]
    _draw_reference_lines(ax)
    for family, points in frame.groupby("family", sort=False):
        _draw_family(ax, points, kind, styles[family], family)
    _mark_measurement_errors(ax, frame, kind)
    has_points = not frame.empty and frame[[speedup, "acc_delta"]].notna().all(axis=1).any()
    if not has_points:
        say_no_data(ax, f"no runs with {kind} speedup and task accuracy")
    else:
        if backbone_front:
            _draw_backbone_fronts(ax, frame, kind)
        ax.legend(fontsize=7, loc="best")
    ax.set_title(PANEL_TITLES[kind], fontsize=10)
    reference = "the speed reference" if kind == "measured" else "the full model"
    ax.set_xlabel(f"{kind} speedup (x, >1 is faster than {reference})")
    ax.set_ylabel("accuracy change vs full model (points)")
    ax.grid(True, alpha=0.3)


def pareto_figure(frame: pd.DataFrame, title: str | None = None, backbone_front: bool = False) -> Figure:
    """The two Pareto panels (measured, theoretical); needs the pareto_* flags from ``add_pareto_flags``.

    ``backbone_front`` also draws the front across all families of each backbone (dotted black).
    """
    figure = new_figure(13, 5.5)
    styles = family_styles(list(dict.fromkeys(frame["family"]))) if not frame.empty else {}
    for ax, kind in zip(figure.subplots(1, 2), SPEEDUP_COLUMNS):
        _draw_panel(ax, frame, kind, styles, backbone_front)
    bars = "±1 stderr" + ("; horizontal: 95% CI of the measured speedup" if speed_errors(frame, "measured") is not None else "")
    figure.suptitle(title or f"Early exit: accuracy vs speedup (labels: target agreement threshold; bars: {bars})")
    return figure


def plot_pareto(frame: pd.DataFrame, path: str | Path, title: str | None = None, backbone_front: bool = False) -> Path:
    """Write the two-panel Pareto PNG (see ``pareto_figure``)."""
    return save(pareto_figure(frame, title, backbone_front), path)
