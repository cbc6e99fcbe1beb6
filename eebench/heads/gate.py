"""Cheap exit gates: predict from a block's hidden state whether its head will agree with the full model.

A full-vocabulary head costs about as much as the lm_head, so evaluating one at every exit layer makes
tokens that do not exit slower than the full model. A gate reads the hidden state through a small MLP
(hidden -> 64 -> 1, ~0.1% of a head's cost); only the head of the exit the gate picks projects to the vocabulary.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ExitGate(nn.Module):
    def __init__(self, norm: nn.Module, hidden: int, width: int = 64):
        super().__init__()
        self.norm = copy.deepcopy(norm).requires_grad_(False)
        self.up = nn.Linear(hidden, width)
        self.out = nn.Linear(width, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Probability that the head at this layer agrees with the full model's next token."""
        return torch.sigmoid(self.out(F.gelu(self.up(self.norm(hidden)))).squeeze(-1))

    def logit(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.up(self.norm(hidden)))).squeeze(-1)
