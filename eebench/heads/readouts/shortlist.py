"""``shortlist``: heads project onto the ``k`` most frequent tokens of the training text only (FR-Spec's frequency-
ranked draft vocabulary), initialised from those rows of lm_head. A head then reads k/vocab of a full projection's
weights; a token outside the shortlist can only come from the full model, so under DSSD it costs speed, never output."""

import torch

from eebench.errors import require
from eebench.heads.readouts import ReadoutType, register


def most_frequent(tokens: torch.Tensor, vocab: int, options: dict) -> torch.Tensor:
    """The ``k`` most frequent token ids of ``tokens`` (ties by lower id), sorted by id."""
    k = options["k"]
    require(k <= vocab, f"readout.options.k={k} exceeds the backbone's vocabulary of {vocab} tokens; allowed: 1..{vocab}")
    counts = torch.bincount(tokens.flatten().to(torch.int64).cpu(), minlength=vocab)[:vocab]
    order = torch.argsort(counts, descending=True, stable=True)
    return order[:k].sort().values


def _check(options: dict) -> None:
    k = options["k"]
    require(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1,
        f"readout.options.k={k!r} is invalid; allowed: an integer >= 1 (and at most the vocabulary size)",
    )


register(ReadoutType("shortlist", rows=most_frequent, options={"k": 8192}, check=_check, description=__doc__))
