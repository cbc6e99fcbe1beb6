"""Exit head architectures."""
from __future__ import annotations

import copy

import torch
from torch import nn


class LinearHead(nn.Module):
    """The paper's head: a frozen copy of the backbone's final norm, then a trainable Linear(hidden, vocab)."""

    def __init__(self, norm: nn.Module, hidden: int, vocab: int, init_weight: torch.Tensor | None = None):
        super().__init__()
        self.norm = copy.deepcopy(norm).requires_grad_(False)
        self.proj = nn.Linear(hidden, vocab, bias=False)
        if init_weight is not None:
            with torch.no_grad():
                self.proj.weight.copy_(init_weight)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(hidden))


class ExitHeads(nn.Module):
    """One head per exit layer; ``exit_layers[i]`` is the 0-based block whose output feeds ``heads[i]``."""

    def __init__(self, exit_layers: list[int], heads: list[nn.Module], kind: str = "linear"):
        super().__init__()
        self.exit_layers = list(exit_layers)
        self.heads = nn.ModuleList(heads)
        self.kind = kind

    @classmethod
    def create(cls, layered, exit_layers: list[int], kind: str = "linear", init_from_lm_head: bool = True) -> "ExitHeads":
        weight = layered.lm_head.weight.detach() if init_from_lm_head else None
        heads = [LinearHead(layered.norm, layered.hidden_size, layered.vocab_size, weight) for _ in exit_layers]
        device = layered.lm_head.weight.device
        return cls(exit_layers, heads, kind).to(device=device, dtype=layered.lm_head.weight.dtype)

    def __len__(self) -> int:
        return len(self.exit_layers)

    def logits(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.heads[index](hidden)
