"""Per-token exit traces: for each token and each head, every confidence metric and the head's argmax,
plus the full model's argmax. Computed once per (backbone, heads, data), then any threshold's behaviour
is simulated from the trace without running the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from eebench.backbones.states import hidden_states_at
from eebench.exits.confidence import head_metric_values, to_uncertainty

TRACE_FILE = "trace.safetensors"


@dataclass
class Trace:
    metrics: dict[str, torch.Tensor]  # metric -> [num_heads, tokens]
    head_argmax: torch.Tensor  # [num_heads, tokens]
    final_argmax: torch.Tensor  # [tokens]

    @property
    def agree(self) -> torch.Tensor:
        return self.head_argmax == self.final_argmax[None]

    def uncertainty(self, metric: str) -> torch.Tensor:
        return to_uncertainty(metric, self.metrics[metric])

    def save(self, directory: Path) -> None:
        tensors = {f"metric.{k}": v for k, v in self.metrics.items()}
        tensors.update(head_argmax=self.head_argmax, final_argmax=self.final_argmax)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(Path(directory) / TRACE_FILE))

    @classmethod
    def load(cls, directory: Path) -> Trace:
        data = load_file(str(Path(directory) / TRACE_FILE))
        metrics = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("metric.")}
        return cls(metrics, data["head_argmax"], data["final_argmax"])


@torch.no_grad()
def collect_trace(model, heads, tokens: torch.Tensor, batch_size: int = 4) -> Trace:
    device = next(model.parameters()).device
    metrics: dict[str, list] = {}
    head_argmax, final_argmax = [], []
    for start in range(0, len(tokens), batch_size):
        final_logits, hiddens = hidden_states_at(model, tokens[start : start + batch_size].to(device), heads.exit_layers)
        final_argmax.append(final_logits.argmax(-1).flatten().cpu())
        per_head = []
        for index, hidden in enumerate(hiddens):
            logits = heads.logits(index, hidden)
            per_head.append((head_metric_values(heads, index, hidden, logits), logits.argmax(-1).flatten().cpu()))
        head_argmax.append(torch.stack([arg for _, arg in per_head]))
        for name in per_head[0][0]:
            metrics.setdefault(name, []).append(torch.stack([m[name].flatten().float().cpu() for m, _ in per_head]))
    return Trace({k: torch.cat(v, 1) for k, v in metrics.items()}, torch.cat(head_argmax, 1), torch.cat(final_argmax))
