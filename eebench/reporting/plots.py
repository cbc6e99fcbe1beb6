"""Pareto figures (accuracy change vs measured and theoretical speedup) and shared plotting helpers.

Uses ``Figure`` with the Agg canvas directly rather than pyplot, so it works headless and never
touches (or is broken by) a global backend chosen elsewhere in the process.

A sweep may hold any number of configuration families, so the Pareto figure is faceted: one row per speedup kind,
and within a row one panel per group of families that share a backbone, head type or confidence metric (as few
grouping axes as keep every panel to ``MAX_FAMILIES_PER_PANEL``). Each panel's title names what its families share
and its legend, below the axes, only what tells them apart; the backbone's front across all families and, in grey,
the backbone's other configurations are drawn in every panel, so no panel loses the whole picture.
"""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import ScaledTranslation

from eebench.analysis.pareto import SPEEDUP_COLUMNS
from eebench.files import atomic_target
from eebench.reporting.facets import MAX_FAMILIES_PER_PANEL, Facet, facets, join_parts, shared_parts
from eebench.reporting.formatting import exit_label_order
from eebench.reporting.plot_labels import LABEL_SIZE, PointLabel, finish_layout
from eebench.reporting.speed import flagged

# Nine markers against ten colours: the periods are coprime, so 90 families get distinct pairs.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", "*")
PANEL_TITLES = {
    "measured": "Accuracy change vs measured speedup",
    "theoretical": "Accuracy change vs theoretical speedup (layers skipped)",
}
DPI = 120
FIGURE_DIR = "figures"  # every figure of a report, beside report.md
FINAL_COLOUR = "#4d4d4d"  # the full model: neutral grey, so the coloured exits stand out
CONTEXT_COLOUR = "#c4c4c4"  # the backbone's configurations drawn in other panels
CONTEXT_LABEL = "other configurations"
FRONT_COLOUR = "#111111"
MAX_COLUMNS = 4
# The PDF's text width (landscape A4 less margins), so the PDF shows the figure at the size its fonts were set for.
FIGURE_WIDTH = 10.7
PANEL_HEIGHT = 2.5  # inches per row of panels, before its legends
LEGEND_LINE = 0.15  # inches per legend entry


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


# ----------------------------------------------------------------------------- drawing


def _draw_reference_lines(ax) -> None:
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, zorder=0)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, zorder=0)


def speed_errors(points: pd.DataFrame, kind: str) -> np.ndarray | None:
    """[[below], [above]] the measured speedup to its 95% CI bounds (0 where none was recorded), or None
    when no point has one; theoretical speedups are computed, not measured, so they have none."""
    if kind != "measured" or "speedup_ci_lo" not in points or points["speedup_ci_lo"].isna().all():
        return None
    speedup = points[SPEEDUP_COLUMNS[kind]]
    return np.vstack([(speedup - points["speedup_ci_lo"]).fillna(0.0), (points["speedup_ci_hi"] - speedup).fillna(0.0)])


def plotted(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows that have this kind of speedup and an accuracy change, i.e. a place on the panel."""
    return frame.dropna(subset=[SPEEDUP_COLUMNS[kind], "acc_delta"]) if not frame.empty else frame


def _draw_family(ax, points: pd.DataFrame, kind: str, style: dict, label: str) -> list[PointLabel]:
    speedup = SPEEDUP_COLUMNS[kind]
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
            alpha=0.7,  # the CI is what a reader of the measured panel needs to see
            capsize=2,
            linewidth=1,
            zorder=2,
        )
    on_front = points[f"pareto_{kind}"].fillna(False).astype(bool)
    front = points[on_front].sort_values(speedup)
    ax.plot(front[speedup], front["acc_delta"], color=style["color"], linewidth=1.2, zorder=2)
    return [
        PointLabel(float(x), float(y), f"{threshold:g}", bool(front_flag))
        for x, y, threshold, front_flag in zip(points[speedup], points["acc_delta"], points["threshold"], on_front)
    ]


def _draw_context(ax, others: pd.DataFrame, kind: str) -> None:
    """The backbone's configurations of other panels, in grey behind this panel's families."""
    if not others.empty:
        speedup = SPEEDUP_COLUMNS[kind]
        ax.scatter(others[speedup], others["acc_delta"], s=10, color=CONTEXT_COLOUR, zorder=1, label=CONTEXT_LABEL)


def _draw_backbone_fronts(ax, frame: pd.DataFrame, kind: str) -> None:
    """The front across all families of each backbone: thick and dark, above the context, below the points."""
    speedup, flags = SPEEDUP_COLUMNS[kind], f"pareto_backbone_{kind}"
    if flags not in frame:
        return
    for number, (_, group) in enumerate(frame.groupby("backbone", sort=True)):
        front = group[group[flags].fillna(False).astype(bool)].dropna(subset=[speedup, "acc_delta"]).sort_values(speedup)
        ax.plot(
            front[speedup],
            front["acc_delta"],
            color=FRONT_COLOUR,
            linewidth=2.6,
            alpha=0.75,
            solid_capstyle="round",
            marker="o",
            markersize=10,
            markerfacecolor="none",  # rings, so a front of one point still shows
            markeredgewidth=1.3,
            label="backbone front (all configurations)" if number == 0 else None,
            zorder=2.5,
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


def _draw_facet(ax, points: pd.DataFrame, facet: Facet, kind: str, backbone_front: bool) -> list[PointLabel]:
    """One panel: the facet's families over the grey rest of their backbones, the backbone front on top."""
    _draw_reference_lines(ax)
    mine = points[points["family"].isin(facet.families)]
    same_backbone = points[points["backbone"].isin(mine["backbone"].unique())]
    _draw_context(ax, same_backbone[~same_backbone["family"].isin(facet.families)], kind)
    styles = family_styles(facet.families)
    labels = []
    for family in facet.families:
        labels += _draw_family(ax, mine[mine["family"] == family], kind, styles[family], facet.labels[family])
    _mark_measurement_errors(ax, mine, kind)
    if backbone_front:
        _draw_backbone_fronts(ax, same_backbone, kind)
    ax.set_title(facet.title, fontsize=8.5, wrap=True)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    return labels


def legend_outside(ax, figure: Figure, gap: float | None) -> None:
    """The legend under the axes, ``gap`` inches below them (past the tick labels), or to their right when ``gap``
    is None: never over the data. The panel's own families come first, the grey context last."""
    handles, names = ax.get_legend_handles_labels()
    if not handles:
        return
    order = sorted(range(len(names)), key=lambda i: names[i] == CONTEXT_LABEL)
    handles, names = [handles[i] for i in order], [names[i] for i in order]
    if gap is None:
        place = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "bbox_transform": ax.transAxes}
    else:
        offset = ScaledTranslation(0, -gap, figure.dpi_scale_trans)
        place = {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0), "bbox_transform": ax.transAxes + offset}
    ax.legend(handles, names, fontsize=LABEL_SIZE, frameon=False, borderaxespad=0.0, **place)


def _grid_shape(count: int) -> tuple[int, int]:
    columns = min(count, MAX_COLUMNS)
    return -(-count // columns), columns


def _legend_entries(facet: Facet) -> int:
    return len(facet.families) + 2  # plus the backbone front and the other configurations


def _row_title(kind: str, points: pd.DataFrame) -> str:
    """The kind of speedup, and what every family of the row shares (then left out of the panel titles)."""
    families = list(dict.fromkeys(points["family"])) if not points.empty else []
    shared = join_parts(shared_parts(families)) if len(families) > MAX_FAMILIES_PER_PANEL else ""
    return PANEL_TITLES[kind] + (f": {shared}" if shared else "")


def _draw_row(subfigure, points: pd.DataFrame, kind: str, backbone_front: bool) -> dict:
    """One speedup kind's panels in ``subfigure``; returns {axes: labels to place}."""
    subfigure.suptitle(_row_title(kind, points), fontsize=10)
    panels = facets(points)
    reference = "the speed reference" if kind == "measured" else "the full model"
    xlabel = f"{kind} speedup (x, >1 is faster than {reference})"
    if not panels:
        ax = subfigure.subplots()
        _draw_reference_lines(ax)
        say_no_data(ax, f"no runs with {kind} speedup and task accuracy")
        ax.set_xlabel(xlabel, fontsize=8.5)
        return {}
    rows, columns = _grid_shape(len(panels))
    grid = subfigure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    labels = {}
    for ax, facet in zip(grid.flat, panels):
        labels[ax] = _draw_facet(ax, points, facet, kind, backbone_front)
    for number, ax in enumerate(grid.flat):
        # The x label under each bottom panel (above its legend); shared axes show tick labels there only.
        if number >= len(panels):
            ax.set_visible(False)
        elif number + columns >= len(panels):
            # Side by side, the full label would run into the next panel's: say it short there.
            ax.set_xlabel(xlabel if columns == 1 else f"{kind} speedup (x, >1 is faster)", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    subfigure.supylabel("accuracy change vs full model (points)", fontsize=8.5)
    return labels


def _row_height(points: pd.DataFrame, legend_right: bool) -> float:
    panels = facets(points)
    if not panels:
        return 1.6
    if legend_right:
        return PANEL_HEIGHT + max(0.0, LEGEND_LINE * _legend_entries(panels[0]) - PANEL_HEIGHT) + 0.9
    rows, columns = _grid_shape(len(panels))
    # Per row of panels: the axes, the tallest legend under it, the titles and ticks.
    tallest = [max(_legend_entries(facet) for facet in panels[row * columns : (row + 1) * columns]) for row in range(rows)]
    return sum(PANEL_HEIGHT + LEGEND_LINE * lines + 0.45 for lines in tallest) + 0.5


def add_legends(figure: Figure, axes: list, right: set | frozenset = frozenset()) -> None:
    """Legends outside each panel: to the right of those in ``right``, else under it, past its tick labels
    (measured on the drawn figure, so any font size fits). Then ``finish_layout``: the layout makes room for them."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for ax in axes:
        below = ax.get_window_extent(renderer).y0 - ax.get_tightbbox(renderer).y0
        legend_outside(ax, figure, None if ax in right else below / figure.dpi + 0.04)


def pareto_figure(frame: pd.DataFrame, title: str | None = None, backbone_front: bool = False) -> Figure:
    """The Pareto panels, measured then theoretical (see the module docstring for the faceting); needs the pareto_*
    flags from ``add_pareto_flags``. ``backbone_front`` also draws the front across all families of each backbone."""
    kinds = {kind: plotted(frame, kind) for kind in SPEEDUP_COLUMNS}
    single = {kind: len(facets(points)) <= 1 for kind, points in kinds.items()}
    side_by_side = all(single.values())
    # Two single panels sit side by side with legends under them; rows of facets stack, and a single panel in a
    # stack keeps its legend to its right, so the row stays short.
    heights = [_row_height(points, single[kind] and not side_by_side) for kind, points in kinds.items()]
    figure = new_figure(FIGURE_WIDTH, (max(heights) if side_by_side else sum(heights)) + 0.4)
    subfigures = figure.subfigures(1, 2) if side_by_side else figure.subfigures(2, 1, height_ratios=heights)
    labels, right = {}, set()
    for subfigure, (kind, points) in zip(subfigures, kinds.items()):
        row = _draw_row(subfigure, points, kind, backbone_front)
        labels.update(row)
        right |= set(row) if single[kind] and not side_by_side else set()
    bars = "±1 stderr" + ("; horizontal: 95% CI of the measured speedup" if speed_errors(frame, "measured") is not None else "")
    figure.suptitle(title or f"Early exit: accuracy vs speedup (labels: target agreement threshold; bars: {bars})", fontsize=10.5)
    add_legends(figure, list(labels), right)
    return finish_layout(figure, labels)


def plot_pareto(frame: pd.DataFrame, path: str | Path, title: str | None = None, backbone_front: bool = False) -> Path:
    """Write the Pareto PNG (see ``pareto_figure``)."""
    return save(pareto_figure(frame, title, backbone_front), path)
