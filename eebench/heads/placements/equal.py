"""``equal`` (the paper): ``placement.num_heads`` heads at the interior points of linspace(0, L, n+2)."""

from dataclasses import dataclass

import numpy as np

from eebench.errors import require
from eebench.heads.placements import Placement, PlacementConfig, register


@dataclass
class EqualPlacementConfig(PlacementConfig):
    kind: str = "equal"
    num_heads: int = 4  # heads at the interior points of linspace(0, L, n+2)

    def __post_init__(self) -> None:
        require(self.num_heads > 0, f"placement.num_heads={self.num_heads!r} must be > 0")


def equal_layers(num_heads: int, num_layers: int) -> list[int]:
    # The paper's rule, taken literally so published placements match (Pythia-410M: 4, 9, 14, 19):
    # interior points of linspace(0, L, n+2), truncated to ints, used as 0-based block indices.
    return [int(x) for x in np.linspace(0, num_layers, num_heads + 2)[1:-1]]


def _valid(layers: list[int], num_layers: int) -> bool:
    return len(set(layers)) == len(layers) and all(0 <= layer <= num_layers - 2 for layer in layers)


def max_equal_heads(num_layers: int) -> int:
    """The most heads the equal rule places at distinct blocks before the last one."""
    return max([n for n in range(1, num_layers) if _valid(equal_layers(n, num_layers), num_layers)], default=0)


def _layers(cfg: EqualPlacementConfig, num_layers: int) -> list[int]:
    most = max_equal_heads(num_layers)
    require(
        cfg.num_heads <= most,
        f"placement.num_heads={cfg.num_heads} is more than a {num_layers}-block backbone allows; allowed: 1..{most}",
    )
    return equal_layers(cfg.num_heads, num_layers)


register(Placement("equal", _layers, EqualPlacementConfig, __doc__))
