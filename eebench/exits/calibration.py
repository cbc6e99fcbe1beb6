"""Per-head threshold calibration against agreement with the full model; the methods live in ``exits/calibrators/``."""

from __future__ import annotations

import torch

from eebench.exits.calibrators import CALIBRATORS, NEVER_EXIT, CalibrationConfig, calibration_config
from eebench.exits.calibrators.max_coverage import max_coverage
from eebench.exits.calibrators.platt import platt
from eebench.exits.calibrators.risk_controlled import binomial_cdf, hoeffding_bentkus_pvalue, risk_controlled

# Re-exported: callers and tests import the methods from here.
__all__ = ["NEVER_EXIT", "binomial_cdf", "calibrate", "hoeffding_bentkus_pvalue", "max_coverage", "platt", "risk_controlled"]


def calibrate(
    cfg: CalibrationConfig | str,
    uncertainties: torch.Tensor,
    agree: torch.Tensor,
    target: float,
    sequence_len: int | None = None,
) -> list[float]:
    """uncertainties, agree: [num_heads, tokens], the calibration sequences of ``sequence_len`` tokens laid end to
    end (methods whose statistics take sequences as the units read it; None: every token is its own unit); one
    threshold per head.

    A token reaches head i only when heads < i were not confident, and those are the harder tokens: a head fit on
    every token meets the target on average yet misses it on the tokens that exit there. ``cfg.conditional``
    therefore fits the heads in order, each on the tokens still in the network under the thresholds already chosen."""
    cfg = calibration_config(cfg) if isinstance(cfg, str) else cfg
    fit = CALIBRATORS.get(cfg.method).fit
    tokens = uncertainties.shape[1]
    groups = torch.arange(tokens, device="cpu") // (sequence_len or 1)  # host data, as the fits' indices
    if not cfg.conditional:
        return [fit(uncertainties[i], agree[i], target, cfg, groups) for i in range(len(uncertainties))]
    thresholds = []
    remaining = torch.ones(tokens, dtype=torch.bool, device=uncertainties.device)
    for unc, hits in zip(uncertainties, agree):
        if bool(remaining.any()):
            threshold = fit(unc[remaining], hits[remaining], target, cfg, groups[remaining.cpu()])
        else:
            threshold = NEVER_EXIT
        thresholds.append(threshold)
        remaining &= unc > threshold
    return thresholds
