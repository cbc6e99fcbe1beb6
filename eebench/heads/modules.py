"""The exit heads of one backbone: one head per exit layer, of a type registered in ``eebench/heads/types/``,
plus optional exit gates."""

from __future__ import annotations

import torch
from torch import nn

from eebench.heads.gate import ExitGate
from eebench.heads.types import HEAD_TYPES, head_options


class ExitHeads(nn.Module):
    """One head per exit layer; ``exit_layers[i]`` is the 0-based block whose output feeds ``heads[i]``."""

    def __init__(
        self,
        exit_layers: list[int],
        heads: list[nn.Module],
        kind: str = "linear",
        gates: list[nn.Module] | None = None,
        options: dict | None = None,
    ):
        super().__init__()
        self.exit_layers = list(exit_layers)
        self.heads = nn.ModuleList(heads)
        self.gates = nn.ModuleList(gates or [])
        self.kind = kind
        self.options = dict(options or {})  # the head type's own fields (head.options), saved with the heads

    @classmethod
    def create(
        cls,
        layered,
        exit_layers: list[int],
        kind: str = "linear",
        init_from_lm_head: bool = True,
        gate_width: int = 0,
        options: dict | None = None,
        dtype: torch.dtype | None = None,
    ) -> ExitHeads:
        """Heads for ``layered``'s exit layers, in the backbone's dtype unless ``dtype`` is given (training builds
        them in float32: master weights; eebench/backbones/precision.py has the rule)."""
        options = head_options(kind, options or {})
        head_cls = HEAD_TYPES.get(kind).cls
        heads = [head_cls(layered.norm, layered.lm_head, init_from_lm_head, **options) for _ in exit_layers]
        gates = [ExitGate(layered.norm, layered.hidden_size, gate_width) for _ in exit_layers] if gate_width else None
        weight = layered.lm_head.weight
        return cls(exit_layers, heads, kind, gates, options).to(device=weight.device, dtype=dtype or weight.dtype)

    @property
    def gate_width(self) -> int:
        return self.gates[0].up.out_features if len(self.gates) else 0

    def gate_cost(self) -> int:
        if not len(self.gates):
            return 0
        return sum(p.numel() for name, p in self.gates[0].named_parameters() if not name.startswith("norm."))

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
