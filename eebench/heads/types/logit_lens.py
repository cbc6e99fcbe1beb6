"""``logit_lens``: the backbone's own final norm and lm_head applied early; nothing to train."""

import torch
from torch import nn

from eebench.backbones.precision import to_compute
from eebench.heads.types import HeadType, SharedLMHead, frozen_copy, register


class LogitLensHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        self.norm = frozen_copy(norm)
        self.shared = SharedLMHead(lm_head)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.shared.lm_head(to_compute(self.norm(hidden), self.shared.lm_head))


register(HeadType("logit_lens", LogitLensHead, description=__doc__))
