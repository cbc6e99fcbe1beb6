"""``risk_controlled`` (Learn-then-Test): fixed-sequence testing from strict to loose thresholds, each null
"agreement of exited tokens < target" rejected by a binomial or Hoeffding-Bentkus p-value <= delta, so the
chosen threshold holds the target on new data with probability >= 1 - delta.

Its fields (``RiskControlledConfig``): ``calibration.delta``, ``calibration.bound`` and ``calibration.grid``."""

import math
from dataclasses import dataclass

import torch
from scipy.stats import binom

from eebench.errors import require
from eebench.exits.calibrators import NEVER_EXIT, CalibrationConfig, Calibrator, register, sorted_with_cuts
from eebench.registry import one_of

BOUNDS = ("binomial", "hb")


@dataclass
class RiskControlledConfig(CalibrationConfig):
    method: str = "risk_controlled"
    delta: float = 0.1  # allowed probability that held-out agreement misses the target, in (0, 1)
    bound: str = "binomial"  # "binomial" (exact) or "hb" (Hoeffding-Bentkus)
    grid: int = 200  # candidate thresholds tested in sequence

    def __post_init__(self) -> None:
        one_of("calibration.bound", self.bound, BOUNDS)
        require(0 < self.delta < 1, f"calibration.delta={self.delta!r} must be in (0, 1)")
        require(self.grid > 0, f"calibration.grid={self.grid!r} must be > 0")


def binomial_cdf(k: torch.Tensor, n: torch.Tensor, p: float) -> torch.Tensor:
    """P(Binomial(n, p) <= k), elementwise (float64), on the device of ``k``; scipy computes it on the host."""
    return torch.from_numpy(binom.cdf(k.double().cpu().numpy(), n.double().cpu().numpy(), p)).to(k.device)


def hoeffding_bentkus_pvalue(k: torch.Tensor, n: torch.Tensor, alpha: float) -> torch.Tensor:
    """p-value for H0: risk >= alpha, observing k errors in n (Bates et al., Learn-then-Test)."""
    rhat = (k.double() / n.double()).clamp(max=alpha)
    a = rhat.clamp(min=1e-12)
    h1 = a * torch.log(a / alpha) + (1 - a) * torch.log((1 - a) / (1 - alpha))
    hoeffding = torch.exp(-n.double() * h1)
    bentkus = math.e * binomial_cdf(torch.ceil(n.double() * rhat), n, alpha)
    return torch.minimum(hoeffding, bentkus).clamp(max=1.0)


def risk_controlled(
    uncertainty: torch.Tensor, agree: torch.Tensor, target: float, cfg: RiskControlledConfig | None = None
) -> float:
    cfg = cfg or RiskControlledConfig()
    alpha = 1.0 - target
    sorted_unc, sorted_agree, cuts = sorted_with_cuts(uncertainty, agree)
    if alpha <= 0:
        return NEVER_EXIT
    errors = torch.cumsum(1 - sorted_agree, 0)
    counts = torch.arange(1, len(sorted_unc) + 1, dtype=torch.float64, device=sorted_unc.device)
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
    count = min(cfg.grid, len(sorted_unc) - min_count + 1)
    candidates = torch.linspace(min_count - 1, len(sorted_unc) - 1, count, device="cpu").long()  # host indices
    chosen = NEVER_EXIT
    for index in candidates.tolist():
        while not bool(cuts[index]):  # move to the end of a tie group
            index += 1
        if float(pvalues[index]) > cfg.delta:
            break
        chosen = float(sorted_unc[index])
    return chosen


register(Calibrator("risk_controlled", risk_controlled, RiskControlledConfig, __doc__))
