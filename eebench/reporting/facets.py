"""The Pareto figure's panels: which families share a panel, its title (what they share) and their legend labels
(what tells them apart)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

MAX_FAMILIES_PER_PANEL = 5  # more markers and colours than this in one panel stop reading at a glance
FACET_AXES = ("backbone", "head", "confidence", "placement")  # what panels group families by, in this order


@dataclass
class Facet:
    """One panel: the families it draws, its title (what they share) and each one's legend label (the rest)."""

    families: list[str]
    title: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def _label_parts(family: str) -> list[tuple[str, str]]:
    """'b/p/h/c name=v' as (slot, text) pairs: path positions, then the named axes."""
    path, *axes = family.split(" ")
    return [(f"path{i}", part) for i, part in enumerate(path.split("/"))] + [(axis.split("=")[0], axis) for axis in axes]


def join_parts(parts: list[tuple[str, str]]) -> str:
    """(slot, text) pairs back into a label: the path parts joined by '/', then the named axes."""
    path = "/".join(text for slot, text in parts if slot.startswith("path"))
    return " ".join(filter(None, [path] + [text for slot, text in parts if not slot.startswith("path")]))


def shared_parts(families: list[str]) -> list[tuple[str, str]]:
    """The label parts every family holds (e.g. the backbone and placement of a one-backbone sweep)."""
    parts = [_label_parts(family) for family in families]
    return [part for part in parts[0] if all(part in other for other in parts[1:])] if parts else []


def titled_facet(families: list[str], suffix: str = "", known: list[tuple[str, str]] = ()) -> Facet:
    """A panel whose title holds what all its families share, less ``known`` (said by the row's title), and whose
    labels hold what differs."""
    shared = shared_parts(families)
    title = join_parts([part for part in shared if part not in known])
    # A family alone in its panel shares everything with itself: its label is then the title.
    labels = {family: join_parts([p for p in _label_parts(family) if p not in shared]) or title or family for family in families}
    return Facet(families, (title + suffix).strip(), labels)


def _grouping(frame: pd.DataFrame) -> list[str]:
    """The fewest leading FACET_AXES (among those that vary) that keep every panel to MAX_FAMILIES_PER_PANEL."""
    varying = [axis for axis in FACET_AXES if axis in frame and frame[axis].nunique() > 1]
    for count in range(1, len(varying) + 1):
        if frame.groupby(varying[:count], sort=False)["family"].nunique().max() <= MAX_FAMILIES_PER_PANEL:
            return varying[:count]
    return varying


def facets(frame: pd.DataFrame) -> list[Facet]:
    """Panels for the families of ``frame``: one when they are few, else grouped (see ``_grouping``); a group still
    too large is split into numbered parts."""
    families = list(dict.fromkeys(frame["family"]))
    if len(families) <= MAX_FAMILIES_PER_PANEL:
        return [titled_facet(families)] if families else []
    known = shared_parts(families)
    keys = _grouping(frame)
    groups = [list(dict.fromkeys(group["family"])) for _, group in frame.groupby(keys, sort=False)] if keys else [families]
    panels = []
    for group in groups:
        parts = [group[start : start + MAX_FAMILIES_PER_PANEL] for start in range(0, len(group), MAX_FAMILIES_PER_PANEL)]
        for number, part in enumerate(parts, start=1):
            panels.append(titled_facet(part, f" ({number} of {len(parts)})" if len(parts) > 1 else "", known))
    return panels
