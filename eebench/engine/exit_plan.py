"""Where tokens may leave the model early, and how that choice is reported.

An exit point is a block, a way to get logits from its output, and a confidence rule. Exit indices in
the engine's output index ``ExitPlan.exit_layers``; ``len(exit_layers)`` means the full model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from eebench.errors import require

Decision = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass
class ExitPoint:
    block: int
    label: int  # exit index reported for tokens leaving here
    # [r, hidden] -> ([r] bool confident, [r, vocab] logits or None when no row exits and a gate made
    # projecting to the vocabulary unnecessary)
    decide: Decision


def _always_with(logits_fn) -> Decision:
    def decide(hidden: torch.Tensor):
        logits = logits_fn(hidden)
        return torch.ones(logits.shape[:-1], dtype=torch.bool, device=logits.device), logits

    return decide


@dataclass
class ExitPlan:
    points: list[ExitPoint]
    exit_layers: list[int]

    @property
    def full_label(self) -> int:
        return len(self.exit_layers)


def no_exits() -> ExitPlan:
    return ExitPlan([], [])


def confidence_exits(heads, policy, blocks: list[int] | None = None) -> ExitPlan:
    """The paper's rule: the first head whose policy is confident decides the token. ``blocks``: only the heads at
    these blocks may decide (None: every head); the others are never evaluated."""
    require(policy is not None, "early exit with heads needs an exit policy (policy=None was given)")
    if blocks is not None:
        unknown = sorted(set(blocks) - set(heads.exit_layers))
        require(
            not unknown and len(blocks) > 0,
            f"exit blocks {list(blocks)} are invalid ({unknown or 'none given'}); "
            f"allowed: a non-empty subset of the heads' blocks {heads.exit_layers}",
        )
    points = [
        ExitPoint(block, index, lambda h, i=index: policy.exit_decision(heads, i, h))
        for index, block in enumerate(heads.exit_layers)
        if blocks is None or block in blocks
    ]
    return ExitPlan(points, list(heads.exit_layers))


def fixed_exit(lm, exit_layer, heads=None, deepest: int | None = None) -> ExitPlan:
    """Every token that may exit leaves at block ``exit_layer``, with no confidence test.

    Without heads the exit reads out through the model's own final norm + lm_head (LayerSkip-style);
    with heads, through the head attached to that block.
    """
    deepest = lm.num_layers - 1 if deepest is None else deepest
    require(
        isinstance(exit_layer, int) and 0 <= exit_layer <= deepest,
        f"exit_layer={exit_layer!r} is invalid; allowed: a block index from 0 to {deepest}",
    )
    if heads is None:
        return ExitPlan([ExitPoint(exit_layer, 0, _always_with(lm.final_logits))], [exit_layer])
    require(
        exit_layer in heads.exit_layers,
        f"exit_layer={exit_layer} has no exit head; allowed: {', '.join(map(str, heads.exit_layers))}",
    )
    index = heads.exit_layers.index(exit_layer)
    point = ExitPoint(exit_layer, index, _always_with(lambda h: heads.logits(index, h)))
    return ExitPlan([point], list(heads.exit_layers))
