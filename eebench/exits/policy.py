"""The exit policy: per-exit-layer thresholds on one confidence metric; the first confident head exits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from eebench.exits.confidence import exit_rule, from_uncertainty, uncertainty
from eebench.exits.metrics import get_metric


@dataclass
class ExitPolicy:
    exit_layers: list[int]
    metric: str
    thresholds: list[float]  # uncertainty units; -inf means the head never exits

    def confident(self, index: int, logits: torch.Tensor) -> torch.Tensor:
        return uncertainty(self.metric, logits) <= self.thresholds[index]

    def first_exit(self, uncertainty: torch.Tensor) -> torch.Tensor:
        """uncertainty [num_heads, tokens] -> per token the first confident head, or num_heads (the full model)."""
        device = uncertainty.device
        confident = uncertainty <= torch.tensor(self.thresholds, dtype=uncertainty.dtype, device=device)[:, None]
        none = torch.tensor(len(self.exit_layers), device=device)
        return torch.where(confident.any(0), confident.float().argmax(0), none)

    def exit_decision(self, heads, index: int, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(confident per row, head logits or None). A metric that needs no logits (the gate) decides first,
        and the head projects to the vocabulary only when some row exits."""
        if not get_metric(self.metric).needs_logits:
            confident = uncertainty(self.metric, heads=heads, index=index, hidden=hidden) <= self.thresholds[index]
            return confident, heads.logits(index, hidden) if bool(confident.any()) else None
        logits = heads.logits(index, hidden)
        return self.confident(index, logits), logits

    def native_thresholds(self) -> list[float | None]:
        """Thresholds in the metric's own units (None: the head never exits), for results files."""
        return [None if math.isinf(t) else from_uncertainty(self.metric, t) for t in self.thresholds]

    def to_dict(self) -> dict:
        return {
            "exit_layers": self.exit_layers,
            "metric": self.metric,
            "rule": exit_rule(self.metric),
            "thresholds": self.native_thresholds(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ExitPolicy:
        metric = data["metric"]
        unc = [-math.inf if t is None else from_uncertainty(metric, t) for t in data["thresholds"]]
        return cls(list(data["exit_layers"]), metric, unc)
