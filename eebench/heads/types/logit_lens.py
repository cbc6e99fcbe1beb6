"""``logit_lens``: the backbone's own final norm and lm_head applied early; nothing to train."""

import torch
from torch import nn

from eebench.heads.types import HeadType, SharedLMHead, frozen_copy, register


class LogitLensHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        self.norm = frozen_copy(norm)
        self.shared = SharedLMHead(lm_head)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.shared.lm_head(self.norm(hidden))


register(HeadType("logit_lens", LogitLensHead, description=__doc__))
