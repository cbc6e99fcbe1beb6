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


@pytest.mark.parametrize("bound", ["binomial", "hb", "clustered"])
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


def _draw_passages(sequences: int, length: int, generator: torch.Generator):
    """Uncertainty ~ U(0, 1), but each passage is easy or hard as a whole: P(agree | u) = 1 - s u with slope s = 0.1
    or 0.9 per passage, equal odds. Tokens of a passage are not independent; over passages the agreement of tokens
    with u <= t is 1 - 0.25 t."""
    u = torch.rand(sequences * length, generator=generator, dtype=torch.float64)
    slope = (0.1 + 0.8 * torch.randint(0, 2, (sequences,), generator=generator).double()).repeat_interleave(length)
    agree = torch.rand(len(u), generator=generator, dtype=torch.float64) < 1 - slope * u
    return u, agree


def test_clustered_bound_holds_the_target_where_passages_make_the_binomial_bound_too_loose():
    target, delta, sequences, length = 0.85, 0.1, 20, 200  # the population curve reaches 0.85 at t = 0.6
    generator = torch.Generator().manual_seed(3)
    thresholds = {"binomial": [], "clustered": []}
    for _ in range(150):
        u, agree = _draw_passages(sequences, length, generator)
        for bound, chosen in thresholds.items():
            cfg = RiskControlledConfig(delta=delta, bound=bound)
            chosen.append(calibrate(cfg, u[None], agree[None], target, sequence_len=length)[0])
    held = {bound: sum(t <= 0.6 for t in chosen) / 150 for bound, chosen in thresholds.items()}
    assert held["clustered"] >= 1 - delta
    assert held["binomial"] < 1 - delta  # tokens taken as independent: the guarantee does not hold
    assert sum(t > 0.3 for t in thresholds["clustered"]) / 150 > 0.5  # and the clustered cut still lets tokens out


def test_clustered_pvalue_by_hand():
    """Ten passages of 100 tokens, one wholly wrong: risk 0.1, cluster-robust stderr sqrt(10/9 * (9 * 10^2 + 90^2))
    / 1000 = 0.1, so against alpha 0.2 the p-value is Phi(-1); with every token its own unit it is far smaller."""
    from statistics import NormalDist

    from eebench.exits.calibrators.risk_controlled import clustered_pvalues

    errors = torch.cat([torch.zeros(900), torch.ones(100)])
    groups = torch.arange(1000) // 100
    assert clustered_pvalues(errors, groups, [999], 0.2) == pytest.approx([NormalDist().cdf(-1.0)])
    assert clustered_pvalues(errors, torch.arange(1000), [999], 0.2)[0] < 1e-10
    assert clustered_pvalues(errors, groups, [99], 0.2) == [1.0]  # one passage: no error estimate, no rejection


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


def _easy_and_hard_trace():
    """Two heads over 100 easy tokens (both heads sure and right) and 100 hard ones: head 0 is unsure and wrong on
    them; head 1 ranks them by uncertainty 1.0..2.0 and is right on the 50 it is surest of, wrong on the rest."""
    from eebench.traces.trace import Trace

    easy, hard = 100, 100
    final = torch.arange(easy + hard)
    head0 = torch.cat([final[:easy], final[easy:] + 1])
    head1 = torch.cat([final[: easy + 50], final[easy + 50 :] + 1])
    unc0 = torch.cat([torch.full((easy,), 0.1), torch.full((hard,), 5.0)])
    unc1 = torch.cat([torch.full((easy,), 0.1), torch.linspace(1.0, 2.0, hard)])
    return Trace({"entropy": torch.stack([unc0, unc1])}, torch.stack([head0, head1]), final)


@pytest.mark.parametrize("method", ["max_coverage", "risk_controlled"])
def test_conditional_calibration_holds_the_target_on_the_tokens_that_exit_at_each_head(method):
    """Fit on every token, head 1 borrows agreement from the easy tokens that head 0 already takes, so the hard
    tokens that do reach it exit at ~76% agreement against a 0.9 target; fit on the tokens that reach it, it holds."""
    from eebench.exits.calibrators import CALIBRATORS
    from eebench.exits.policy import ExitPolicy
    from eebench.traces.simulate import heldout_check

    trace = _easy_and_hard_trace()
    unc = trace.uncertainty("entropy")
    checks = {}
    for conditional in (True, False):
        cfg = CALIBRATORS.get(method).config(method=method, conditional=conditional)
        policy = ExitPolicy([1, 2], "entropy", calibrate(cfg, unc, trace.agree, 0.9))
        assert policy.thresholds[0] == pytest.approx(0.1)  # the first head sees every token either way
        checks[conditional] = heldout_check(trace, policy, 0.9)
    marginal, conditional = checks[False]["heads"][1], checks[True]["heads"][1]
    if method == "max_coverage":  # exact on its own data: 66 hard tokens exit at head 1 (50 right) vs 55 (50 right)
        assert (marginal["tokens"], conditional["tokens"]) == (66, 55)
    assert marginal["agreement"] < 0.9 and not checks[False]["target_met"]
    assert conditional["agreement"] >= 0.9 and checks[True]["target_met"]


def test_conditional_calibration_never_exits_a_head_that_no_token_reaches():
    unc = torch.tensor([[0.1, 0.1, 0.1], [0.1, 0.1, 0.1]])
    agree = torch.ones(2, 3, dtype=torch.bool)
    assert calibrate("max_coverage", unc, agree, 0.9) == [pytest.approx(0.1), NEVER_EXIT]
