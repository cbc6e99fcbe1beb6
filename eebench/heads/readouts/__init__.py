"""Exit readouts: what a head projects onto, one module each in this package (``readout.kind``).

A head ends in a projection onto vocabulary rows. The readout decides which rows: ``full`` (all of lm_head's) or
``shortlist`` (the K most frequent tokens of the training text). A readout with rows hands every head a frozen copy
of those lm_head rows in place of lm_head, so each head type (linear, mlp, low_rank, lens, logit_lens) projects onto
them and its cost shrinks with them; ``ExitHeads.logits`` spreads a head's row logits back onto the vocabulary, with
every other token at a logit no softmax gives mass to, so confidence metrics see the readout's own distribution and
a token outside the rows can only come from the full model. A readout's options are ``readout.options.<name>``,
declared with their defaults on the readout; the registry puts every readout in Hydra's ConfigStore as an option
of the ``readout`` group (``eebench.config``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from eebench.registry import Registry, discover, variant_options

# Logit of a token outside the readout's rows: finite (so sums of log-probabilities stay finite and fp16 holds it),
# far enough below any real logit that its softmax probability is exactly zero in float32.
OUTSIDE_LOGIT = -1.0e4


@dataclass(frozen=True)
class ReadoutType:
    name: str
    # (training tokens, vocabulary size, options) -> sorted token ids the heads project onto; None: all of them
    rows: Callable[[torch.Tensor, int, dict], torch.Tensor | None]
    options: dict = field(default_factory=dict)  # readout.options.<name> -> default
    check: Callable[[dict], None] | None = None  # validates the (completed) options at composition; EEBenchError
    description: str = ""


READOUTS: Registry[ReadoutType] = Registry("readout.kind")
register = READOUTS.register


def readout_options(kind: str, options: dict) -> dict:
    """The options of readout ``kind``: validated, with its defaults filled in."""
    return variant_options(READOUTS, "readout.options", kind, options)


@dataclass
class ReadoutConfig:
    kind: str = "full"  # a readout registered in eebench/heads/readouts/: which vocabulary rows the heads project onto
    # The readout's own fields (e.g. shortlist: k), declared with defaults on the readout; filled in here.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = readout_options(self.kind, self.options)


class Rows(nn.Module):
    """A frozen copy of some rows of lm_head: stands in for lm_head in a head built on a readout with rows. Its
    tensors are non-persistent buffers: head files never hold them, loading rebuilds them from lm_head and the ids."""

    def __init__(self, lm_head: nn.Module, ids: torch.Tensor):
        super().__init__()
        ids = ids.to(lm_head.weight.device)
        self.register_buffer("weight", lm_head.weight.detach()[ids].clone(), persistent=False)
        bias = getattr(lm_head, "bias", None)
        self.register_buffer("bias", None if bias is None else bias.detach()[ids].clone(), persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(hidden, self.weight, self.bias)


def spread(row_logits: torch.Tensor, ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """[..., K] logits over ``ids`` -> [..., vocab] logits, OUTSIDE_LOGIT everywhere else."""
    out = row_logits.new_full((*row_logits.shape[:-1], vocab), OUTSIDE_LOGIT)
    return out.index_copy_(-1, ids, row_logits)


discover(__name__, __path__)
