"""``explicit``: heads at the 0-based block indices ``placement.layers`` (e.g. placement.layers=[3,7,11])."""

from eebench.heads.placements import Placement, register

# Whether the indices fit the backbone is checked once its depth is known (heads/placement.py check_layers).
register(Placement("explicit", lambda cfg, num_layers: list(cfg.layers), ("layers",), None, __doc__))
