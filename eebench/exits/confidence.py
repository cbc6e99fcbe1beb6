"""Confidence metrics of a head's next-token distribution.

Internally every metric is turned into an *uncertainty* (lower = more confident) so that one exit rule,
``uncertainty <= threshold``, serves all of them; results report thresholds in the metric's own units.
"""
from __future__ import annotations

import torch

# metric -> sign that maps its value to an uncertainty
# ("gate" is a learned gate's predicted probability that the head agrees with the full model.)
_SIGN = {"entropy": 1.0, "max_prob": -1.0, "margin": -1.0, "gate": -1.0}


def metric_values(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """All metrics from one logits tensor [..., vocab] (one softmax, shared)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    probs = logp.exp()
    top2 = probs.topk(2, dim=-1).values
    return {
        "entropy": -(probs * logp).sum(-1),
        "max_prob": top2[..., 0],
        "margin": top2[..., 0] - top2[..., 1],
    }


def to_uncertainty(metric: str, values: torch.Tensor) -> torch.Tensor:
    return values * _SIGN[metric]


def from_uncertainty(metric: str, threshold: float) -> float:
    return threshold * _SIGN[metric]


def head_metric_values(heads, index: int, hidden: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of head ``index``: those of its logits, plus its gate's probability when it has a gate."""
    values = metric_values(logits)
    if len(heads.gates):
        values["gate"] = heads.gate_probability(index, hidden).float()
    return values


def uncertainty(metric: str, logits: torch.Tensor) -> torch.Tensor:
    """The one metric the engine needs per step, without computing the others."""
    if metric == "entropy":
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -(logp.exp() * logp).sum(-1)
    return to_uncertainty(metric, metric_values(logits)[metric])


def exit_rule(metric: str) -> str:
    return f"{metric} <= threshold" if _SIGN[metric] > 0 else f"{metric} >= threshold"
