"""Where exit heads go: 0-based indices of the blocks whose outputs feed them."""
from __future__ import annotations

import numpy as np

from eebench.config import PlacementConfig
from eebench.errors import require


def exit_layers(cfg: PlacementConfig, num_layers: int) -> list[int]:
    if cfg.kind == "equal":
        layers = equal_layers(cfg.num_heads, num_layers)
        most = max_equal_heads(num_layers)
        require(cfg.num_heads <= most, f"placement.num_heads={cfg.num_heads} is more than a {num_layers}-block backbone "
                                       f"allows; allowed: 1..{most}")
    elif cfg.kind == "every":
        layers = list(range(cfg.every - 1, num_layers - 1, cfg.every))
        require(len(layers) > 0, f"placement.every={cfg.every} places no head in a {num_layers}-block backbone; "
                                 f"allowed: 1..{num_layers - 1}")
    else:
        layers = list(cfg.layers)
    check_layers(layers, num_layers)
    return layers


def equal_layers(num_heads: int, num_layers: int) -> list[int]:
    # The paper's rule, taken literally so published placements match (Pythia-410M: 4, 9, 14, 19):
    # interior points of linspace(0, L, n+2), truncated to ints, used as 0-based block indices.
    return [int(x) for x in np.linspace(0, num_layers, num_heads + 2)[1:-1]]


def _valid(layers: list[int], num_layers: int) -> bool:
    return len(set(layers)) == len(layers) and all(0 <= layer <= num_layers - 2 for layer in layers)


def max_equal_heads(num_layers: int) -> int:
    """The most heads the equal rule places at distinct blocks before the last one."""
    return max([n for n in range(1, num_layers) if _valid(equal_layers(n, num_layers), num_layers)], default=0)


def check_layers(layers: list[int], num_layers: int) -> None:
    allowed = f"distinct block indices in [0, {num_layers - 2}] for a {num_layers}-block backbone"
    require(len(layers) > 0, f"placement gives no exit layers; allowed: {allowed}")
    for layer in layers:
        require(0 <= layer <= num_layers - 2, f"placement layer {layer} is out of range; allowed: {allowed}")
    require(len(set(layers)) == len(layers), f"placement layers {layers} contain duplicates; allowed: {allowed}")
    require(layers == sorted(layers), f"placement layers {layers} are not in increasing order; allowed: {allowed}")
