"""Per-token cost model for batch-1 decoding, counted in weight reads (multiply-accumulates per token).

At batch 1 a decode step is bound by reading weights, so a block costs its parameter count and an exit
head its hidden x vocab projection, whether or not it exits. Heads are charged for every head evaluated
before the exit, which is why naive full-vocab heads can erase the gain of exiting early.
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

    @classmethod
    def from_layered(cls, layered, heads) -> "CostModel":
        block = float(sum(p.numel() for p in layered.blocks[0].parameters()))
        head = sum(heads.projection_cost(i) for i in range(len(heads))) / len(heads)
        return cls(layered.num_layers, list(heads.exit_layers), block, float(head), float(layered.lm_head.weight.numel()))

    @property
    def full_cost(self) -> float:
        return self.num_layers * self.block_cost + self.lm_head_cost

    def exit_cost(self, exit_index: int) -> float:
        """Cost of a token leaving at head ``exit_index``; ``len(exit_layers)`` means the full model."""
        heads_run = min(exit_index + 1, len(self.exit_layers))
        if exit_index >= len(self.exit_layers):
            return self.full_cost + heads_run * self.head_cost
        return (self.exit_layers[exit_index] + 1) * self.block_cost + heads_run * self.head_cost

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
