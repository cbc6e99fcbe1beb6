"""Threshold labels beside plotted points that collide with no other label, no marker and stay inside the axes."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

LABEL_SIZE = 7
# Where a threshold label may sit around its point (points); the first that collides with nothing wins.
LABEL_OFFSETS = ((4, 3), (4, -10), (-4, 3), (-4, -10), (7, -3.5), (-7, -3.5))
MARKER_RADIUS = 3.5  # points: a scatter marker's half-width at the default size, kept free of labels


@dataclass
class PointLabel:
    x: float
    y: float
    text: str
    on_front: bool  # front points are labelled first, so they keep their labels in a crowd


def _point_box(ax, x: float, y: float, renderer) -> Bbox:
    cx, cy = ax.transData.transform((x, y))
    radius = MARKER_RADIUS * renderer.points_to_pixels(1.0)
    return Bbox.from_extents(cx - radius, cy - radius, cx + radius, cy + radius)


def place_labels(ax, labels: list[PointLabel], renderer) -> None:
    """Annotate each point at the first offset where its label overlaps no other label, no marker and stays inside
    the axes; a label with no such place is left out (every threshold is in the results tables). Call after the
    layout is final: it works in display coordinates."""
    frame_box = ax.get_window_extent(renderer)
    taken = [_point_box(ax, label.x, label.y, renderer) for label in labels]
    # Points that coincide with the same threshold (families of equal results) need one label between them.
    unique: dict[tuple, PointLabel] = {}
    for label in labels:
        if label.on_front or (label.x, label.y, label.text) not in unique:
            unique[(label.x, label.y, label.text)] = label
    for label in sorted(unique.values(), key=lambda point: not point.on_front):
        for dx, dy in LABEL_OFFSETS:
            text = ax.annotate(
                label.text,
                (label.x, label.y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=LABEL_SIZE,
                ha="left" if dx >= 0 else "right",
            )
            text.set_in_layout(False)
            box = text.get_window_extent(renderer)
            inside = frame_box.x0 <= box.x0 and box.x1 <= frame_box.x1 and frame_box.y0 <= box.y0 and box.y1 <= frame_box.y1
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            text.remove()


def finish_layout(figure: Figure, labels: dict) -> Figure:
    """Lay the figure out, place the threshold labels of each axes ({axes: [PointLabel]}) where they collide with
    nothing, then freeze the layout so saving cannot move the axes under the labels."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for ax, points in labels.items():
        place_labels(ax, points, renderer)
    figure.set_layout_engine("none")
    return figure
