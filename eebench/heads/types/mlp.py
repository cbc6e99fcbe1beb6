"""``mlp``: frozen norm, a residual MLP (zero-initialised output, so it starts as the linear head), then Linear(hidden, vocab)."""

import torch
from torch import nn

from eebench.heads.types import HeadType, register
from eebench.heads.types.linear import LinearHead


class MLPHead(LinearHead):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__(norm, lm_head, init_from_lm_head)
        hidden = lm_head.weight.shape[1]
        self.up = nn.Linear(hidden, hidden)
        self.down = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.norm(hidden)
        return self.proj(x + self.down(torch.nn.functional.gelu(self.up(x))))


register(HeadType("mlp", MLPHead, description=__doc__))
