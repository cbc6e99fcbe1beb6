"""Where exit heads go: 0-based indices of the blocks whose outputs feed them (rules in ``heads/placements/``)."""

from __future__ import annotations

from eebench.errors import require
from eebench.heads.placements import PLACEMENTS, PlacementConfig


def exit_layers(cfg: PlacementConfig, num_layers: int) -> list[int]:
    layers = PLACEMENTS.get(cfg.kind).layers(cfg, num_layers)
    check_layers(layers, num_layers)
    return layers


def check_layers(layers: list[int], num_layers: int) -> None:
    allowed = f"distinct block indices in [0, {num_layers - 2}] for a {num_layers}-block backbone"
    require(len(layers) > 0, f"placement gives no exit layers; allowed: {allowed}")
    for layer in layers:
        require(0 <= layer <= num_layers - 2, f"placement layer {layer} is out of range; allowed: {allowed}")
    require(len(set(layers)) == len(layers), f"placement layers {layers} contain duplicates; allowed: {allowed}")
    require(layers == sorted(layers), f"placement layers {layers} are not in increasing order; allowed: {allowed}")
