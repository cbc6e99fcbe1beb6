"""``every``: a head after every ``placement.every``-th block: blocks every-1, 2*every-1, ... below the last block."""

from dataclasses import dataclass

from eebench.errors import require
from eebench.heads.placements import Placement, PlacementConfig, register


@dataclass
class EveryPlacementConfig(PlacementConfig):
    kind: str = "every"
    every: int = 4  # heads after blocks every-1, 2*every-1, ... below the last block

    def __post_init__(self) -> None:
        require(self.every > 0, f"placement.every={self.every!r} must be > 0")


def _layers(cfg: EveryPlacementConfig, num_layers: int) -> list[int]:
    layers = list(range(cfg.every - 1, num_layers - 1, cfg.every))
    require(
        len(layers) > 0,
        f"placement.every={cfg.every} places no head in a {num_layers}-block backbone; allowed: 1..{num_layers - 1}",
    )
    return layers


register(Placement("every", _layers, EveryPlacementConfig, __doc__))
