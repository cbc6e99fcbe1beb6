"""Per-head threshold calibration against agreement with the full model.

Every method maps (uncertainty, agree) of one head on calibration tokens and a target agreement level
to one threshold in uncertainty units; a token exits when its uncertainty <= threshold.
- ``max_coverage`` (the paper): largest threshold whose running agreement on calibration data >= target.
- ``platt``: logistic fit of P(agree | uncertainty); exit where the fitted probability >= target.
- ``risk_controlled`` (Learn-then-Test): fixed-sequence testing from strict to loose thresholds, each null
  "agreement of exited tokens < target" rejected by a binomial or Hoeffding-Bentkus p-value <= delta, so the
  chosen threshold holds the target on new data with probability >= 1 - delta.
"""
from __future__ import annotations

import math

import torch
from scipy.stats import binom

from eebench.config import CalibrationConfig

NEVER_EXIT = -math.inf


def _sorted(uncertainty: torch.Tensor, agree: torch.Tensor):
    order = torch.argsort(uncertainty.double(), stable=True)
    sorted_unc = uncertainty.double()[order]
    # A threshold must not split tied uncertainties: only the last index of each tie group is a valid cut.
    last_of_group = torch.ones_like(sorted_unc, dtype=torch.bool)
    last_of_group[:-1] = sorted_unc[1:] != sorted_unc[:-1]
    return sorted_unc, agree[order].double(), last_of_group


def max_coverage(uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg: CalibrationConfig | None = None) -> float:
    sorted_unc, sorted_agree, cuts = _sorted(uncertainty, agree)
    running = torch.cumsum(sorted_agree, 0) / torch.arange(1, len(sorted_unc) + 1, dtype=torch.float64)
    valid = (running >= target - 1e-12) & cuts
    if not bool(valid.any()):
        return NEVER_EXIT
    return float(sorted_unc[valid.nonzero().max()])


def platt(uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg: CalibrationConfig | None = None) -> float:
    x = uncertainty.double()
    scale = float(x.std()) or 1.0
    z = (x - x.mean()) / scale  # standardise so plain gradient steps converge
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * z + params[1], agree.double())
        loss.backward()
        return loss

    optimizer.step(closure)
    slope, bias = (float(v) for v in params.detach())
    if slope >= 0 or target >= 1.0:  # agreement does not fall with uncertainty: no threshold is justified
        return NEVER_EXIT
    z_cut = (math.log(target / (1 - target)) - bias) / slope
    return float(z_cut * scale + x.mean())


def binomial_cdf(k: torch.Tensor, n: torch.Tensor, p: float) -> torch.Tensor:
    """P(Binomial(n, p) <= k), elementwise (float64)."""
    return torch.from_numpy(binom.cdf(k.double().numpy(), n.double().numpy(), p))


def hoeffding_bentkus_pvalue(k: torch.Tensor, n: torch.Tensor, alpha: float) -> torch.Tensor:
    """p-value for H0: risk >= alpha, observing k errors in n (Bates et al., Learn-then-Test)."""
    rhat = (k.double() / n.double()).clamp(max=alpha)
    a = rhat.clamp(min=1e-12)
    h1 = a * torch.log(a / alpha) + (1 - a) * torch.log((1 - a) / (1 - alpha))
    hoeffding = torch.exp(-n.double() * h1)
    bentkus = math.e * binomial_cdf(torch.ceil(n.double() * rhat), n, alpha)
    return torch.minimum(hoeffding, bentkus).clamp(max=1.0)


def risk_controlled(uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg: CalibrationConfig | None = None) -> float:
    cfg = cfg or CalibrationConfig(method="risk_controlled")
    alpha = 1.0 - target
    sorted_unc, sorted_agree, cuts = _sorted(uncertainty, agree)
    if alpha <= 0:
        return NEVER_EXIT
    errors = torch.cumsum(1 - sorted_agree, 0)
    counts = torch.arange(1, len(sorted_unc) + 1, dtype=torch.float64)
    if cfg.bound == "hb":
        pvalues = hoeffding_bentkus_pvalue(errors, counts, alpha)
    else:
        pvalues = binomial_cdf(errors, counts, alpha)
    # Fixed-sequence testing from the strictest candidate: stop at the first null we cannot reject. A cut
    # letting out fewer than min_count tokens could not be rejected even with zero errors, so the
    # sequence starts there (it depends only on counts, not on the data).
    min_count = math.ceil(math.log(cfg.delta) / math.log(1 - alpha)) if alpha < 1 else 1
    if min_count > len(sorted_unc):
        return NEVER_EXIT
    candidates = torch.linspace(min_count - 1, len(sorted_unc) - 1, min(cfg.grid, len(sorted_unc) - min_count + 1)).long()
    chosen = NEVER_EXIT
    for index in candidates.tolist():
        while not bool(cuts[index]):  # move to the end of a tie group
            index += 1
        if float(pvalues[index]) > cfg.delta:
            break
        chosen = float(sorted_unc[index])
    return chosen


CALIBRATORS = {"max_coverage": max_coverage, "platt": platt, "risk_controlled": risk_controlled}


def calibrate(cfg: CalibrationConfig | str, uncertainties: torch.Tensor, agree: torch.Tensor, target: float) -> list[float]:
    """uncertainties, agree: [num_heads, tokens]; one threshold per head, each head calibrated on its own."""
    cfg = CalibrationConfig(method=cfg) if isinstance(cfg, str) else cfg
    rule = CALIBRATORS[cfg.method]
    return [rule(uncertainties[i], agree[i], target, cfg) for i in range(len(uncertainties))]
