"""Diagnostic figures: where tokens exit, how well each head's confidence predicts agreement, what a
threshold buys in coverage, and accuracy against compute.

Every function takes already-extracted data and writes one PNG; choosing what to plot (and saying
what was skipped) is the caller's job, see ``eebench.reporting.figure_set``.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from eebench.analysis.pareto import SPEEDUP_COLUMNS
from eebench.reporting.formatting import exit_label_order
from eebench.reporting.plot_labels import PointLabel, finish_layout
from eebench.reporting.plots import (
    FIGURE_WIDTH,
    LEGEND_LINE,
    add_legends,
    exit_colours,
    family_styles,
    new_figure,
    save,
    say_no_data,
)

MAX_COLUMNS = 4


def _panel_grid(count: int, panel_width: float = 3.6, panel_height: float = 3.0):
    """A figure with ``count`` panels in a near-square grid (at most MAX_COLUMNS wide), so it fills a
    landscape page; unused cells are hidden."""
    columns = max(1, min(math.ceil(math.sqrt(count)), MAX_COLUMNS))
    rows = max(1, math.ceil(count / columns))
    figure = new_figure(panel_width * columns + 0.6, panel_height * rows + 0.7)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return figure, list(axes[:count])


# ----------------------------------------------------------------------------- exit histogram


def exit_columns(frame: pd.DataFrame) -> list[str]:
    labels = [c.split(":", 1)[1] for c in frame.columns if c.startswith("exit:")]
    return [f"exit:{label}" for label in sorted(labels, key=exit_label_order)]


def _exit_name(label: str) -> str:
    return "full model" if label == "final" else f"block {label}"


def _draw_stacked_exits(ax, group: pd.DataFrame, columns: list[str], colours: dict[str, str]) -> None:
    shares = group[columns].fillna(0.0).to_numpy(dtype=float)
    positions = np.arange(len(group))
    left = np.zeros(len(group))
    for index, column in enumerate(columns):
        label = column.split(":", 1)[1]
        ax.barh(positions, shares[:, index], left=left, color=colours[label], edgecolor="white", linewidth=0.5)
        left += shares[:, index]
    ax.set_yticks(positions, [f"{t:g}" for t in group["threshold"]])
    ax.set_ylabel("target agreement threshold")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of held-out tokens")


def plot_exit_histograms(frame: pd.DataFrame, path: str | Path) -> Path | None:
    """One panel per family: a stacked bar per threshold, split by the block tokens left at."""
    columns = exit_columns(frame)
    if frame.empty or not columns:
        return None
    families = list(dict.fromkeys(frame["family"]))
    figure, axes = _panel_grid(len(families), panel_width=5.2, panel_height=0.45 * frame.groupby("family").size().max() + 1.8)
    labels = [c.split(":", 1)[1] for c in columns]
    colours = exit_colours(labels)
    for ax, family in zip(axes, families):
        group = frame[frame["family"] == family].sort_values("threshold")
        _draw_stacked_exits(ax, group, columns, colours)
        ax.set_title(family, fontsize=9)
    # Colours are shared by all panels (same block, same colour), so one legend serves them all.
    handles = [Patch(color=colours[label], label=_exit_name(label)) for label in labels]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=8)
    figure.suptitle("Where tokens leave the model, per threshold")
    return save(figure, path)


# ----------------------------------------------------------------------------- calibration curves


def _head_panels(axes, curves: list[dict], curve: str, x_key: str):
    """Yield (axes, head, points of its ``curve`` that have ``x_key``) per head, titling each panel;
    a head without such points gets a 'no data' panel instead."""
    for ax, head in zip(axes, curves):
        points = [p for p in head.get(curve) or [] if isinstance(p, dict) and p.get(x_key) is not None]
        ax.set_title(f"head at block {head.get('layer', '?')}", fontsize=9)
        if points:
            yield ax, head, points
        else:
            say_no_data(ax, f"no {curve} data")


def _agreement_floor(agreement: list, targets: list[float]) -> float:
    """Bottom of the agreement axis: just below the lowest bin or target, so well-calibrated heads
    (agreement 0.9-1.0) are not squashed flat against the top of a 0-1 axis."""
    values = [a for a in agreement if isinstance(a, (int, float)) and math.isfinite(a)] + list(targets)
    return max(0.0, min(values, default=0.0) - 0.05) - 0.01


def plot_reliability(curves: list[dict], path: str | Path, title: str, metric: str, targets: list[float]) -> Path:
    """Per head: mean confidence value of a quantile bin vs agreement with the full model in that bin."""
    figure, axes = _panel_grid(len(curves))
    for ax, _head, bins in _head_panels(axes, curves, "reliability", "value"):
        values = [b["value"] for b in bins]
        agreement = [b.get("agreement") for b in bins]
        sizes = [12 + 60 * (b.get("count") or 0) / max(max(x.get("count") or 0 for x in bins), 1) for b in bins]
        ax.plot(values, agreement, color="C0", linewidth=1)
        ax.scatter(values, agreement, s=sizes, color="C0", zorder=3)
        for target in targets:
            ax.axhline(target, color="grey", linestyle=":", linewidth=0.8)
        ax.set_ylim(_agreement_floor(agreement, targets), 1.01)
        ax.set_xlabel(metric, fontsize=8)
        ax.set_ylabel("agreement with full model", fontsize=8)
        ax.grid(True, alpha=0.3)
    figure.suptitle(
        f"{title}\nreliability: held-out tokens in quantile bins of the confidence metric (marker size: tokens; dotted: targets)",
        fontsize=10,
    )
    return save(figure, path)


def _target_colours(chosen: dict[str, list[dict]]) -> dict:
    """Light to dark red with the agreement target; a legend beats text labels, which pile up
    because calibrated thresholds for neighbouring targets sit close together."""
    targets = sorted({p["target"] for points in chosen.values() for p in points if isinstance(p.get("target"), (int, float))})
    reds = matplotlib.colormaps["Reds"]
    return {target: reds(0.35 + 0.6 * i / max(len(targets) - 1, 1)) for i, target in enumerate(targets)}


def _mark_chosen(ax, chosen: list[dict], colours: dict) -> None:
    for point in chosen:
        if point.get("threshold") is None or point.get("coverage") is None or point.get("target") not in colours:
            continue
        ax.plot(
            [point["threshold"]],
            [point["coverage"]],
            marker="o",
            linestyle="none",
            zorder=4,
            color=colours[point["target"]],
            markeredgecolor="black",
            markeredgewidth=0.5,
            label=f"chosen, target {point['target']:g}",
        )


def _shared_legend(figure, axes) -> None:
    """One legend below the panels with every distinct entry of any panel."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=min(len(entries), 3), fontsize=8)


def plot_coverage(curves: list[dict], chosen: dict[str, list[dict]], path: str | Path, title: str, metric: str) -> Path:
    """Per head: threshold grid vs share of held-out tokens let out and their agreement.

    ``chosen`` maps head layer to the thresholds calibration picked, as dicts with threshold,
    coverage and target (the run's agreement target), drawn as red dots.
    """
    figure, axes = _panel_grid(len(curves))
    colours = _target_colours(chosen)
    for ax, head, grid in _head_panels(axes, curves, "coverage", "threshold"):
        thresholds = [g["threshold"] for g in grid]
        ax.plot(thresholds, [g.get("coverage") for g in grid], color="C0", label="coverage")
        ax.plot(thresholds, [g.get("agreement") for g in grid], color="C1", linestyle="--", label="agreement of exited")
        _mark_chosen(ax, chosen.get(str(head.get("layer")), []), colours)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"{metric} threshold", fontsize=8)
        ax.grid(True, alpha=0.3)
    _shared_legend(figure, axes)
    figure.suptitle(f"{title}\nthreshold → coverage (dots: thresholds calibration chose, darker = higher target)", fontsize=10)
    return save(figure, path)


# ----------------------------------------------------------------------------- cost vs accuracy


def _draw_full_models(ax, frame: pd.DataFrame) -> None:
    for _, group in frame.groupby("backbone", sort=True):
        full = group.dropna(subset=["mean_baseline_acc"])
        if full.empty:
            continue
        row = full.iloc[0]
        ax.errorbar(
            [100.0],
            [row["mean_baseline_acc"] * 100],
            yerr=[row["mean_baseline_acc_se"] * 100],
            fmt="*",
            color="black",
            markersize=11,
            capsize=2,
            zorder=4,
        )
        # To the right of the 100% line, where no early-exit point can be, so labels never collide.
        ax.annotate(
            f"full {row['backbone']}",
            (100.0, row["mean_baseline_acc"] * 100),
            fontsize=7,
            textcoords="offset points",
            xytext=(9, -3),
            ha="left",
        )


def plot_cost_accuracy(frame: pd.DataFrame, path: str | Path) -> Path | None:
    """Write ``cost_accuracy_figure``'s PNG; None when no point has both a theoretical speedup and an accuracy."""
    figure = cost_accuracy_figure(frame)
    return save(figure, path) if figure is not None else None


def cost_accuracy_figure(frame: pd.DataFrame) -> Figure | None:
    """Mean task accuracy vs per-token cost (% of the full model's FLOPs = 1 / theoretical speedup)."""
    speedup = SPEEDUP_COLUMNS["theoretical"]  # task tokens where recorded: the accuracy's own data
    points = frame.dropna(subset=[speedup, "mean_acc"]) if not frame.empty else frame
    if points.empty:
        return None
    figure = new_figure(FIGURE_WIDTH, cost_accuracy_height(points["family"].nunique()))
    ax = figure.subplots()
    styles = family_styles(list(dict.fromkeys(frame["family"])))
    labels = []
    for family, group in points.groupby("family", sort=False):
        cost = 100.0 / group[speedup]
        ax.errorbar(
            cost,
            group["mean_acc"] * 100,
            yerr=group["mean_acc_se"] * 100,
            fmt=styles[family]["marker"],
            color=styles[family]["color"],
            capsize=2,
            label=family,
            alpha=0.85,
        )
        labels += [PointLabel(x, y, f"{t:g}", False) for x, y, t in zip(cost, group["mean_acc"] * 100, group["threshold"])]
    _draw_full_models(ax, points)
    ax.axvline(100.0, color="grey", linestyle="--", linewidth=1, zorder=0)
    ax.set_xlim(right=max(ax.get_xlim()[1], 100.0) + 18)  # room for the full-model labels
    ax.set_xlabel("per-token cost, % of the full model (weight reads = 100 / theoretical speedup)")
    ax.set_ylabel("mean task accuracy (%)")
    ax.set_title("Accuracy vs compute (★ full model; bars: ±1 stderr; labels: threshold)", fontsize=10)
    ax.grid(True, alpha=0.3)
    # As the Pareto figure's single panels: the legend to the right of the axes, never over the points, and the
    # threshold labels where they collide with nothing.
    add_legends(figure, [ax], right={ax})
    return finish_layout(figure, {ax: labels})


def cost_accuracy_height(families: int) -> float:
    """Inches: the axes' height, or the height of a legend of ``families`` entries beside them where that is taller."""
    return max(5.2, LEGEND_LINE * families + 1.2)
