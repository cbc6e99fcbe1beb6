"""Per-head threshold calibration against agreement with the full model."""
from __future__ import annotations

import math

import torch

NEVER_EXIT = -math.inf


def max_coverage(uncertainty: torch.Tensor, agree: torch.Tensor, target: float) -> float:
    """The paper's rule: the largest uncertainty at which the running agreement of all tokens at or below it
    (sorted by uncertainty, ascending) is still >= target. ``NEVER_EXIT`` if no prefix reaches the target."""
    order = torch.argsort(uncertainty.double(), stable=True)
    sorted_unc = uncertainty.double()[order]
    running = torch.cumsum(agree[order].double(), 0) / torch.arange(1, len(order) + 1, dtype=torch.float64)
    # A threshold must not split tied uncertainties: only the last index of each tie group is a valid cut.
    last_of_group = torch.ones_like(sorted_unc, dtype=torch.bool)
    last_of_group[:-1] = sorted_unc[1:] != sorted_unc[:-1]
    valid = (running >= target - 1e-12) & last_of_group
    if not bool(valid.any()):
        return NEVER_EXIT
    return float(sorted_unc[valid.nonzero().max()])


CALIBRATORS = {"max_coverage": max_coverage}


def calibrate(method: str, uncertainties: torch.Tensor, agree: torch.Tensor, target: float) -> list[float]:
    """uncertainties, agree: [num_heads, tokens]; one threshold per head, each head calibrated on its own."""
    rule = CALIBRATORS[method]
    return [rule(uncertainties[i], agree[i], target) for i in range(len(uncertainties))]
