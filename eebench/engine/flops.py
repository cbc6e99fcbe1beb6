"""Per-token cost model for batch-1 decoding, counted in weight reads (multiply-accumulates per token).

At batch 1 a decode step is bound by reading weights, so a block costs its parameter count and an exit
head its projection, whether or not the token exits there. Without gates every head up to the exit is
evaluated, which is why naive full-vocabulary heads can erase the gain of exiting early; with gates
each exit layer costs one small gate and only the exiting head projects to the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CostModel:
    num_layers: int
    exit_layers: list[int]
    block_cost: float
    head_cost: float
    lm_head_cost: float
    gate_cost: float = 0.0
    gated: bool = False

    @classmethod
    def from_layered(cls, layered, heads, gated: bool = False) -> CostModel:
        block = float(sum(p.numel() for p in layered.blocks[0].parameters()))
        head = sum(heads.projection_cost(i) for i in range(len(heads))) / len(heads)
        return cls(
            layered.num_layers,
            list(heads.exit_layers),
            block,
            float(head),
            float(layered.lm_head.weight.numel()),
            float(heads.gate_cost()),
            gated,
        )

    @property
    def full_cost(self) -> float:
        return self.num_layers * self.block_cost + self.lm_head_cost

    def _checks(self, heads_checked: int, exits: bool) -> float:
        """Cost of deciding at ``heads_checked`` exit layers, the last of which exits if ``exits``."""
        if self.gated:
            return heads_checked * self.gate_cost + (self.head_cost if exits else 0.0)
        return heads_checked * self.head_cost

    def exit_cost(self, exit_index: int) -> float:
        """Cost of a token leaving at head ``exit_index``; ``len(exit_layers)`` means the full model."""
        if exit_index >= len(self.exit_layers):
            return self.full_cost + self._checks(len(self.exit_layers), exits=False)
        return (self.exit_layers[exit_index] + 1) * self.block_cost + self._checks(exit_index + 1, exits=True)

    def blocks_run(self, exit_index: int) -> int:
        return self.num_layers if exit_index >= len(self.exit_layers) else self.exit_layers[exit_index] + 1

    def mean_cost(self, exit_index: torch.Tensor) -> float:
        costs = torch.tensor([self.exit_cost(i) for i in range(len(self.exit_layers) + 1)], dtype=torch.float64)
        return float(costs[exit_index].mean())

    def theoretical_speedup(self, exit_index: torch.Tensor) -> float:
        return self.full_cost / self.mean_cost(exit_index)

    def depth_speedup(self, exit_index: torch.Tensor) -> float:
        depth = torch.tensor([self.blocks_run(i) for i in range(len(self.exit_layers) + 1)], dtype=torch.float64)
        return self.num_layers / float(depth[exit_index].mean())

    def no_exit_overhead(self) -> float:
        """Extra cost of a token that no head lets out, relative to a full-model step."""
        return self.exit_cost(len(self.exit_layers)) / self.full_cost - 1.0
