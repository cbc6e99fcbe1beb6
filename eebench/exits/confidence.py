"""Confidence metrics of a head's output, read through the registry in ``eebench.exits.metrics``.

Internally every metric is turned into an *uncertainty* (lower = more confident) so that one exit rule,
``uncertainty <= threshold``, serves all of them; results report thresholds in the metric's own units.
"""

from __future__ import annotations

import torch

from eebench.exits.metrics import METRICS, HeadOutput, get_metric


def metric_values(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric that reads logits alone, from one logits tensor [..., vocab] (one softmax, shared)."""
    output = HeadOutput(logits)
    return {name: metric.value(output) for name, metric in METRICS.items() if metric.available(output)}


def head_metric_values(heads, index: int, hidden: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric head ``index`` can give: those of its logits, plus those of its gate when it has one."""
    output = HeadOutput(logits, heads, index, hidden)
    return {name: metric.value(output).float() for name, metric in METRICS.items() if metric.available(output)}


def to_uncertainty(metric: str, values: torch.Tensor) -> torch.Tensor:
    return values * get_metric(metric).sign


def from_uncertainty(metric: str, threshold: float) -> float:
    return threshold * get_metric(metric).sign


def uncertainty(
    metric: str, logits: torch.Tensor | None = None, heads=None, index: int | None = None, hidden: torch.Tensor | None = None
) -> torch.Tensor:
    """The one metric the engine needs per step, without computing the others; a metric that reads the
    hidden state (the gate) needs ``heads``, ``index`` and ``hidden`` instead of ``logits``."""
    chosen = get_metric(metric)
    return to_uncertainty(metric, chosen.value(HeadOutput(logits, heads, index, hidden)))


def exit_rule(metric: str) -> str:
    return f"{metric} <= threshold" if get_metric(metric).sign > 0 else f"{metric} >= threshold"
