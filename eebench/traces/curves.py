"""Per-head diagnostics from a trace, small enough to store in results.json and plot in reports."""

from __future__ import annotations

import torch

from eebench.exits.confidence import from_uncertainty
from eebench.traces.trace import Trace


def reliability(values: torch.Tensor, agree: torch.Tensor, bins: int = 10) -> list[dict]:
    """Tokens binned by quantiles of the metric: mean metric value vs agreement with the full model."""
    order = torch.argsort(values)
    rows = []
    for chunk in torch.tensor_split(order, bins):
        if len(chunk):
            rows.append(
                {"value": float(values[chunk].mean()), "agreement": float(agree[chunk].double().mean()), "count": len(chunk)}
            )
    return rows


def coverage_curve(uncertainty: torch.Tensor, agree: torch.Tensor, metric: str, points: int = 21) -> list[dict]:
    """For a grid of thresholds (uncertainty quantiles): share of tokens the head would let out, and their agreement."""
    rows = []
    for q in torch.linspace(0, 1, points):
        cut = float(torch.quantile(uncertainty.double(), float(q)))
        out = uncertainty <= cut
        rows.append(
            {
                "threshold": from_uncertainty(metric, cut),
                "coverage": float(out.double().mean()),
                "agreement": float(agree[out].double().mean()) if bool(out.any()) else None,
            }
        )
    return rows


def head_curves(trace: Trace, metric: str, exit_layers: list[int]) -> list[dict]:
    unc, agree = trace.uncertainty(metric), trace.agree
    return [
        {
            "layer": layer,
            "reliability": reliability(trace.metrics[metric][i], agree[i]),
            "coverage": coverage_curve(unc[i], agree[i], metric),
        }
        for i, layer in enumerate(exit_layers)
    ]


def per_head_heldout(trace: Trace, policy) -> list[dict]:
    """Each head judged alone on held-out tokens: share it would let out at its threshold, and their agreement."""
    unc, agree = trace.uncertainty(policy.metric), trace.agree
    rows = []
    for i, layer in enumerate(policy.exit_layers):
        out = unc[i] <= policy.thresholds[i]
        rows.append(
            {
                "layer": layer,
                "threshold": policy.native_thresholds()[i],
                "coverage": float(out.double().mean()),
                "agreement": float(agree[i][out].double().mean()) if bool(out.any()) else None,
            }
        )
    return rows
