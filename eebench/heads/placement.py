"""Where exit heads go: 0-based indices of the blocks whose outputs feed them."""
from __future__ import annotations

import numpy as np

from eebench.config import PlacementConfig
from eebench.errors import require


def exit_layers(cfg: PlacementConfig, num_layers: int) -> list[int]:
    if cfg.kind == "equal":
        # The paper's rule, taken literally so published placements match (Pythia-410M: 4, 9, 14, 19):
        # interior points of linspace(0, L, n+2), truncated to ints, used as 0-based block indices.
        layers = [int(x) for x in np.linspace(0, num_layers, cfg.num_heads + 2)[1:-1]]
    elif cfg.kind == "every":
        layers = list(range(cfg.every - 1, num_layers - 1, cfg.every))
    else:
        layers = list(cfg.layers)
    check_layers(layers, num_layers)
    return layers


def check_layers(layers: list[int], num_layers: int) -> None:
    allowed = f"distinct block indices in [0, {num_layers - 2}] for a {num_layers}-block backbone"
    require(len(layers) > 0, f"placement gives no exit layers; allowed: {allowed}")
    for layer in layers:
        require(0 <= layer <= num_layers - 2, f"placement layer {layer} is out of range; allowed: {allowed}")
    require(len(set(layers)) == len(layers), f"placement layers {layers} contain duplicates; allowed: {allowed}")
    require(layers == sorted(layers), f"placement layers {layers} are not in increasing order; allowed: {allowed}")
