"""Calibration methods on synthetic heads whose true agreement curve is known."""

import pytest
import torch

from eebench.exits.calibration import NEVER_EXIT, binomial_cdf, calibrate, platt, risk_controlled
from eebench.exits.calibrators.risk_controlled import RiskControlledConfig


def _draw(n: int, generator: torch.Generator):
    """Uncertainty ~ U(0, 1); P(agree | u) = 1 - 0.4 u, so agreement of tokens with u <= t is 1 - 0.2 t."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    agree = torch.rand(n, generator=generator, dtype=torch.float64) < 1 - 0.4 * u
    return u, agree


def _true_agreement(threshold: float) -> float:
    t = min(max(threshold, 0.0), 1.0)
    return 1.0 if t == 0 else 1 - 0.2 * t


@pytest.mark.parametrize("bound", ["binomial", "hb"])
def test_risk_controlled_holds_target_with_probability_1_minus_delta(bound):
    target, delta = 0.9, 0.1  # the true curve reaches 0.9 at t = 0.5
    cfg = RiskControlledConfig(delta=delta, bound=bound)
    generator = torch.Generator().manual_seed(0)
    held, thresholds = 0, []
    for _ in range(200):
        u, agree = _draw(1500, generator)
        threshold = risk_controlled(u, agree, target, cfg)
        thresholds.append(threshold)
        held += _true_agreement(threshold) >= target
    assert held / 200 >= 1 - delta
    # ...and it is not vacuous: it lets a real share of tokens out (the best possible cut is 0.5).
    assert sum(t > 0.3 for t in thresholds) / 200 > 0.5


def test_max_coverage_is_not_risk_controlled_but_close_to_the_target():
    generator = torch.Generator().manual_seed(1)
    u, agree = _draw(5000, generator)
    threshold = calibrate("max_coverage", u[None], agree[None], 0.9)[0]
    assert abs(_true_agreement(threshold) - 0.9) < 0.02


def test_platt_finds_the_point_where_probability_of_agreement_is_the_target():
    generator = torch.Generator().manual_seed(2)
    u, agree = _draw(20000, generator)
    # P(agree | u) = 1 - 0.4u is not logistic, but near 0.9 the fitted curve should cross close to u = 0.25
    assert platt(u, agree, 0.9) == pytest.approx(0.25, abs=0.08)
    assert platt(u, ~agree, 0.9) == NEVER_EXIT  # agreement rising with uncertainty justifies no threshold


def test_binomial_cdf_matches_direct_sum():
    from math import comb

    n, p = 12, 0.3
    direct = [sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)) for k in range(n + 1)]
    ours = binomial_cdf(torch.arange(n + 1), torch.full((n + 1,), n), p)
    assert ours.tolist() == pytest.approx(direct)


def test_bad_calibration_config():
    from eebench.errors import EEBenchError

    with pytest.raises(EEBenchError, match="calibration.delta"):
        RiskControlledConfig(delta=1.5)
