"""``every``: a head after every ``placement.every``-th block: blocks every-1, 2*every-1, ... below the last block."""

from eebench.errors import require
from eebench.heads.placements import Placement, register


def _layers(cfg, num_layers: int) -> list[int]:
    layers = list(range(cfg.every - 1, num_layers - 1, cfg.every))
    require(
        len(layers) > 0,
        f"placement.every={cfg.every} places no head in a {num_layers}-block backbone; allowed: 1..{num_layers - 1}",
    )
    return layers


def _check(cfg) -> None:
    require(cfg.every > 0, f"placement.every={cfg.every!r} must be > 0")


register(Placement("every", _layers, ("every",), _check, __doc__))
