"""The exit heads of one backbone: one head per exit layer, of a type registered in ``eebench/heads/types/``,
plus optional exit gates."""

from __future__ import annotations

import torch
from torch import nn

from eebench.heads.gate import ExitGate
from eebench.heads.readouts import Rows, readout_options, spread
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
        readout: str = "full",
        readout_options: dict | None = None,
        readout_ids: torch.Tensor | None = None,  # the vocabulary rows heads project onto; None: all of them
        vocab_size: int = 0,
    ):
        super().__init__()
        self.exit_layers = list(exit_layers)
        self.heads = nn.ModuleList(heads)
        self.gates = nn.ModuleList(gates or [])
        self.kind = kind
        self.options = dict(options or {})  # the head type's own fields (head.options), saved with the heads
        self.readout, self.readout_options, self.vocab_size = readout, dict(readout_options or {}), vocab_size
        self.register_buffer("readout_ids", readout_ids, persistent=readout_ids is not None)

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
        readout: str = "full",
        readout_ids: torch.Tensor | None = None,
        readout_opts: dict | None = None,
    ) -> ExitHeads:
        """Heads for ``layered``'s exit layers, in the backbone's dtype unless ``dtype`` is given (training builds
        them in float32: master weights; eebench/backbones/precision.py has the rule). ``readout_ids``: the rows a
        readout with rows (e.g. ``shortlist``) chose; every head projects onto those rows of lm_head only."""
        options = head_options(kind, options or {})
        readout_opts = readout_options(readout, readout_opts or {})
        head_cls = HEAD_TYPES.get(kind).cls
        weight = layered.lm_head.weight
        with torch.device(weight.device):  # built where they run: no vocabulary-sized host copy on a GPU
            rows = layered.lm_head if readout_ids is None else Rows(layered.lm_head, readout_ids)
            heads = [head_cls(layered.norm, rows, init_from_lm_head, **options) for _ in exit_layers]
            gates = [ExitGate(layered.norm, layered.hidden_size, gate_width) for _ in exit_layers] if gate_width else None
        ids = None if readout_ids is None else readout_ids.to(device=weight.device, dtype=torch.long)
        built = cls(exit_layers, heads, kind, gates, options, readout, readout_opts, ids, layered.vocab_size)
        if readout_ids is not None:
            built.rows = rows  # registered so moves and casts reach it; its buffers are not saved (rebuilt from ids)
        return built.to(device=weight.device, dtype=dtype or weight.dtype)

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

    def readout_logits(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """Head ``index``'s logits over its readout's rows (the whole vocabulary for ``readout=full``)."""
        return self.heads[index](hidden)

    def vocabulary_ids(self, row_indices: torch.Tensor) -> torch.Tensor:
        """Indices into the readout's rows -> token ids (the same indices for ``readout=full``)."""
        return row_indices if self.readout_ids is None else self.readout_ids[row_indices]

    def logits(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """Head ``index``'s logits over the whole vocabulary (tokens outside a shortlist get no probability)."""
        logits = self.heads[index](hidden)
        return logits if self.readout_ids is None else spread(logits, self.readout_ids, self.vocab_size)
