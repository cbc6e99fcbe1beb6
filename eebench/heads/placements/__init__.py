"""Head placements, one module each in this package; a module registers its rule with ``register``.

A placement maps its config and the backbone's number of blocks to the 0-based indices of the blocks whose
outputs feed exit heads. Its own fields are ``placement.<field>`` keys of its config, a subclass of
``PlacementConfig`` declared beside the rule (with its defaults, and checks that run when the config is built,
before any model loads); the registry puts every placement in Hydra's ConfigStore as an option of the
``placement`` group (``eebench.config``). To add one: a module here calling ``register(Placement(...))`` and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eebench.registry import Registry, discover


@dataclass
class PlacementConfig:
    kind: str = "equal"  # a placement registered in eebench/heads/placements/


@dataclass(frozen=True)
class Placement:
    name: str
    layers: Callable  # (its config, num_layers) -> block indices; may raise EEBenchError for this backbone
    config: type[PlacementConfig]  # the placement's own fields: a subclass of PlacementConfig, checked on creation
    description: str = ""

    def default_config(self) -> PlacementConfig:
        return self.config(kind=self.name)


PLACEMENTS: Registry[Placement] = Registry("placement.kind")
register = PLACEMENTS.register

discover(__name__, __path__)
