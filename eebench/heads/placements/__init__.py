"""Head placements, one module each in this package; a module registers its rule with ``register``.

A placement maps its ``PlacementConfig`` and the backbone's number of blocks to the 0-based indices of the
blocks whose outputs feed exit heads. Its own fields (``fields``) are ``placement.<field>`` keys of
``PlacementConfig``; ``check`` validates them when the config is built, before any model loads.
To add one: a module here calling ``register(Placement(...))``, a ``conf/placement/<name>.yaml`` and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eebench.registry import Registry, discover


@dataclass(frozen=True)
class Placement:
    name: str
    layers: Callable  # (PlacementConfig, num_layers) -> block indices; may raise EEBenchError for this backbone
    fields: tuple[str, ...] = ()  # the placement.<field> keys this rule reads
    check: Callable | None = None  # (PlacementConfig) -> None; raises EEBenchError for a bad field value
    description: str = ""


PLACEMENTS: Registry[Placement] = Registry("placement.kind")
register = PLACEMENTS.register

discover(__name__, __path__)
