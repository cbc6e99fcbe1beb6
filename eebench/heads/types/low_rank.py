"""``low_rank``: frozen norm, then Linear(hidden, rank) -> Linear(rank, vocab); rank x (hidden + vocab) weights per head
instead of hidden x vocab. Initialised from lm_head by truncated SVD (its best rank-``rank`` approximation, Eckart-Young),
so at rank = hidden it starts as the logit lens. ``head.options.rank`` sets the rank."""

import torch
from torch import nn

from eebench.errors import require
from eebench.heads.types import HeadType, frozen_copy, register


class LowRankHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool, rank: int):
        super().__init__()
        vocab, hidden = lm_head.weight.shape
        require(
            rank <= min(hidden, vocab),
            f"head.options.rank={rank} exceeds the backbone's hidden size {hidden} or the readout's {vocab} rows; "
            f"allowed: 1..{min(hidden, vocab)}",
        )
        self.norm = frozen_copy(norm)
        self.down = nn.Linear(hidden, rank, bias=False)
        self.up = nn.Linear(rank, vocab, bias=False)
        if init_from_lm_head:
            u, s, vh = torch.linalg.svd(lm_head.weight.detach().float(), full_matrices=False)
            root = s[:rank].sqrt()
            with torch.no_grad():  # W ~= (U sqrt(S)) (sqrt(S) V^T): both factors equally scaled
                self.down.weight.copy_(root[:, None] * vh[:rank])
                self.up.weight.copy_(u[:, :rank] * root)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(self.norm(hidden)))


def _check(options: dict) -> None:
    rank = options["rank"]
    require(
        isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1,
        f"head.options.rank={rank!r} is invalid; allowed: an integer >= 1",
    )


# rank's one default (head.options.rank); it must not exceed the backbone's hidden size
register(HeadType("low_rank", LowRankHead, options={"rank": 64}, check=_check, description=__doc__))
