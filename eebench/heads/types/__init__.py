"""Exit head types, one module each in this package; a module registers its type with ``register``.

Every head maps a block's output hidden state to next-token logits; it is built as
``HeadType.cls(norm, lm_head, init_from_lm_head, **options)`` from the backbone's final norm and lm_head.
A type's own config fields are ``head.options.<name>``, declared with their defaults on the type (``options``);
the registry puts every type in Hydra's ConfigStore as an option of the ``head`` group (``eebench.config``).
To add one: a module here calling ``register(HeadType(...))`` and a test. Saved heads record their type and
options (heads/store.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from eebench.registry import Registry, discover, variant_options


@dataclass(frozen=True)
class HeadType:
    name: str
    cls: type[nn.Module]
    options: dict = field(default_factory=dict)  # head.options.<name> -> default
    check: Callable[[dict], None] | None = None  # validates the (completed) options; raises EEBenchError
    description: str = ""

    @property
    def module(self) -> str:
        """The module defining the head: its source is part of the cache key of heads of this type."""
        return self.cls.__module__


HEAD_TYPES: Registry[HeadType] = Registry("head.kind")
register = HEAD_TYPES.register


def head_options(kind: str, options: dict) -> dict:
    """The options of head type ``kind``: validated, with the type's defaults filled in."""
    return variant_options(HEAD_TYPES, "head.options", kind, options)


def frozen_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).requires_grad_(False)


class SharedLMHead:
    """Holds the backbone's lm_head without registering it, so head files never duplicate its weights."""

    def __init__(self, lm_head: nn.Module):
        self.lm_head = lm_head


discover(__name__, __path__)
