"""``lens``: a trainable affine hidden->hidden map (identity-initialised) into the backbone's frozen final norm and
lm_head; hidden x hidden parameters instead of hidden x vocab."""

import torch
from torch import nn

from eebench.backbones.precision import to_compute
from eebench.heads.types import HeadType, SharedLMHead, frozen_copy, register


class LensHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        hidden = lm_head.weight.shape[1]
        self.translator = nn.Linear(hidden, hidden)
        with torch.no_grad():
            self.translator.weight.copy_(torch.eye(hidden))
            self.translator.bias.zero_()
        self.norm = frozen_copy(norm)
        self.shared = SharedLMHead(lm_head)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.shared.lm_head(to_compute(self.norm(self.translator(hidden)), self.shared.lm_head))


register(HeadType("lens", LensHead, description=__doc__))
