"""``explicit``: heads at the 0-based block indices ``placement.layers`` (e.g. placement.layers=[3,7,11])."""

from dataclasses import dataclass

from omegaconf import MISSING

from eebench.heads.placements import Placement, PlacementConfig, register


@dataclass
class ExplicitPlacementConfig(PlacementConfig):
    kind: str = "explicit"
    # 0-based block indices, required (placement.layers=[3,7,11]); whether they fit the backbone is checked once its
    # depth is known (heads/placement.py check_layers)
    layers: list[int] = MISSING


register(Placement("explicit", lambda cfg, num_layers: list(cfg.layers), ExplicitPlacementConfig, __doc__))
