"""``risk_controlled`` (Learn-then-Test): fixed-sequence testing from strict to loose thresholds, each null
"agreement of exited tokens < target" rejected by a p-value <= delta, so the chosen threshold holds the target on
new data with probability >= 1 - delta. The binomial and Hoeffding-Bentkus bounds take tokens as independent; the
tokens of one passage agree or disagree together, so ``clustered`` also requires a normal test with the calibration
sequences as the units (cluster-robust variance) to reject, the units the held-out check uses.

Its fields (``RiskControlledConfig``): ``calibration.delta``, ``calibration.bound`` and ``calibration.grid``."""

import math
import statistics
from dataclasses import dataclass

import torch
from scipy.stats import binom

from eebench.errors import require
from eebench.exits.calibrators import NEVER_EXIT, CalibrationConfig, Calibrator, register, sorted_with_cuts
from eebench.registry import one_of

BOUNDS = ("binomial", "hb", "clustered")
NORMAL = statistics.NormalDist()


@dataclass
class RiskControlledConfig(CalibrationConfig):
    method: str = "risk_controlled"
    delta: float = 0.1  # allowed probability that held-out agreement misses the target, in (0, 1)
    # "clustered" (the binomial p-value or a normal one with the calibration sequences as the units, whichever is
    # larger: tokens of a passage are not independent), "binomial" (exact for independent tokens), "hb"
    # (Hoeffding-Bentkus)
    bound: str = "clustered"
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


def clustered_pvalues(errors: torch.Tensor, groups: torch.Tensor, indices: list[int], alpha: float) -> list[float]:
    """For each prefix ``errors[: i + 1]`` (i in ``indices``, ascending), the one-sided normal p-value of H0:
    risk >= alpha, its standard error cluster-robust over ``groups`` (the ratio estimator's); 1.0 with fewer
    than two groups, where that error cannot be estimated. Sums per group grow segment by segment, so the cost
    is one pass over the tokens plus one per index over the groups."""
    _, index = torch.unique(groups, return_inverse=True)
    clusters = int(index.max()) + 1 if len(index) else 0
    err_sums = torch.zeros(clusters, dtype=torch.float64, device="cpu")
    count_sums = torch.zeros(clusters, dtype=torch.float64, device="cpu")
    pvalues, start = [], 0
    for end in (i + 1 for i in indices):
        segment = index[start:end].cpu()
        err_sums += torch.bincount(segment, weights=errors[start:end].double().cpu(), minlength=clusters)
        count_sums += torch.bincount(segment, minlength=clusters).double()
        start = end
        present = count_sums > 0
        units = int(present.sum())
        if units < 2:
            pvalues.append(1.0)
            continue
        rhat = float(err_sums.sum() / end)
        residual = err_sums[present] - rhat * count_sums[present]
        stderr = float((units / (units - 1) * (residual**2).sum()).sqrt()) / end
        if stderr == 0:
            pvalues.append(0.0 if rhat < alpha else 1.0)
        else:
            pvalues.append(float(NORMAL.cdf((rhat - alpha) / stderr)))
    return pvalues


def risk_controlled(
    uncertainty: torch.Tensor,
    agree: torch.Tensor,
    target: float,
    cfg: RiskControlledConfig | None = None,
    groups: torch.Tensor | None = None,
) -> float:
    """``groups``: per token, the calibration sequence it belongs to (``clustered`` only; each token its own
    unit when None)."""
    cfg = cfg or RiskControlledConfig()
    alpha = 1.0 - target
    sorted_unc, sorted_agree, cuts, order = sorted_with_cuts(uncertainty, agree)
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
    indices = [_end_of_tie_group(cuts, index) for index in candidates.tolist()]
    tested = pvalues[indices].tolist()
    if cfg.bound == "clustered":
        units = torch.arange(len(sorted_unc), device="cpu") if groups is None else groups[order.cpu()]
        tested = [max(p, q) for p, q in zip(tested, clustered_pvalues(1 - sorted_agree, units, indices, alpha))]
    chosen = NEVER_EXIT
    for index, pvalue in zip(indices, tested):
        if pvalue > cfg.delta:
            break
        chosen = float(sorted_unc[index])
    return chosen


def _end_of_tie_group(cuts: torch.Tensor, index: int) -> int:
    while not bool(cuts[index]):
        index += 1
    return index


register(Calibrator("risk_controlled", risk_controlled, RiskControlledConfig, __doc__))
