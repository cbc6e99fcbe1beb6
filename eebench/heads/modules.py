"""Exit head architectures. Every head maps a block's output hidden state to next-token logits.

- ``linear`` (the paper): frozen copy of the final norm, then a trainable Linear(hidden, vocab) initialised from lm_head.
- ``mlp``: frozen norm, a residual MLP (zero-initialised output, so it starts as the linear head), then Linear(hidden, vocab).
- ``lens``: a trainable affine hidden->hidden map (identity-initialised) into the backbone's frozen final norm and
  lm_head; hidden x hidden parameters instead of hidden x vocab.
- ``logit_lens``: the backbone's own final norm and lm_head applied early; nothing to train.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from eebench.heads.gate import ExitGate


def _frozen_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).requires_grad_(False)


class _SharedLMHead:
    """Holds the backbone's lm_head without registering it, so head files never duplicate its weights."""

    def __init__(self, lm_head: nn.Module):
        self.lm_head = lm_head


class LinearHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        self.norm = _frozen_copy(norm)
        vocab, hidden = lm_head.weight.shape
        self.proj = nn.Linear(hidden, vocab, bias=False)
        if init_from_lm_head:
            with torch.no_grad():
                self.proj.weight.copy_(lm_head.weight)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(hidden))


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


class LensHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        hidden = lm_head.weight.shape[1]
        self.translator = nn.Linear(hidden, hidden)
        with torch.no_grad():
            self.translator.weight.copy_(torch.eye(hidden))
            self.translator.bias.zero_()
        self.norm = _frozen_copy(norm)
        self.shared = _SharedLMHead(lm_head)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.shared.lm_head(self.norm(self.translator(hidden)))


class LogitLensHead(nn.Module):
    def __init__(self, norm: nn.Module, lm_head: nn.Module, init_from_lm_head: bool = True):
        super().__init__()
        self.norm = _frozen_copy(norm)
        self.shared = _SharedLMHead(lm_head)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.shared.lm_head(self.norm(hidden))


_HEAD_CLASSES = {"linear": LinearHead, "mlp": MLPHead, "lens": LensHead, "logit_lens": LogitLensHead}


class ExitHeads(nn.Module):
    """One head per exit layer; ``exit_layers[i]`` is the 0-based block whose output feeds ``heads[i]``."""

    def __init__(self, exit_layers: list[int], heads: list[nn.Module], kind: str = "linear", gates: list[nn.Module] | None = None):
        super().__init__()
        self.exit_layers = list(exit_layers)
        self.heads = nn.ModuleList(heads)
        self.gates = nn.ModuleList(gates or [])
        self.kind = kind

    @classmethod
    def create(cls, layered, exit_layers: list[int], kind: str = "linear", init_from_lm_head: bool = True,
               gate_width: int = 0) -> "ExitHeads":
        head_cls = _HEAD_CLASSES[kind]
        heads = [head_cls(layered.norm, layered.lm_head, init_from_lm_head) for _ in exit_layers]
        gates = [ExitGate(layered.norm, layered.hidden_size, gate_width) for _ in exit_layers] if gate_width else None
        weight = layered.lm_head.weight
        return cls(exit_layers, heads, kind, gates).to(device=weight.device, dtype=weight.dtype)

    @property
    def gate_width(self) -> int:
        return self.gates[0].up.out_features if len(self.gates) else 0

    def gate_cost(self) -> int:
        return sum(p.numel() for name, p in self.gates[0].named_parameters() if not name.startswith("norm.")) if len(self.gates) else 0

    def gate_probability(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.gates[index](hidden)

    def __len__(self) -> int:
        return len(self.exit_layers)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.heads.parameters())

    def projection_cost(self, index: int) -> int:
        """Weights read per token by head ``index`` (its own matrices plus a shared lm_head, if any)."""
        head = self.heads[index]
        shared = head.shared.lm_head.weight.numel() if hasattr(head, "shared") else 0
        return sum(p.numel() for name, p in head.named_parameters() if not name.startswith("norm.")) + shared

    def logits(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.heads[index](hidden)
