"""``linear`` (the paper): frozen copy of the final norm, then a trainable Linear(hidden, vocab) initialised from lm_head."""

import torch
from torch import nn

from eebench.heads.types import HeadType, frozen_copy, register


class LinearHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        self.norm = frozen_copy(norm)
        vocab, hidden = lm_head.weight.shape
        self.proj = nn.Linear(hidden, vocab, bias=False)
        if init_from_lm_head:
            with torch.no_grad():
                self.proj.weight.copy_(lm_head.weight)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(hidden))


register(HeadType("linear", LinearHead, description=__doc__))
