import math

import pytest
import torch

from eebench.engine.flops import CostModel
from eebench.errors import EEBenchError
from eebench.exits.calibration import NEVER_EXIT, max_coverage
from eebench.exits.policy import ExitPolicy
from eebench.heads.placement import exit_layers
from eebench.heads.placements.equal import EqualPlacementConfig
from eebench.heads.placements.every import EveryPlacementConfig
from eebench.heads.placements.explicit import ExplicitPlacementConfig
from eebench.traces.simulate import simulate
from eebench.traces.trace import Trace


@pytest.mark.parametrize(
    "layers, expected", [(6, [1, 2, 3, 4]), (12, [2, 4, 7, 9]), (24, [4, 9, 14, 19]), (16, [3, 6, 9, 12]), (32, [6, 12, 19, 25])]
)
def test_equal_placement_matches_the_papers_pythia_layers(layers, expected):
    assert exit_layers(EqualPlacementConfig(num_heads=4), layers) == expected


def test_every_and_explicit_placement():
    assert exit_layers(EveryPlacementConfig(every=4), 12) == [3, 7]
    assert exit_layers(ExplicitPlacementConfig(layers=[0, 5]), 12) == [0, 5]


@pytest.mark.parametrize(
    "layers, fragment", [([3, 3], "duplicates"), ([-1], "out of range"), ([11], "out of range"), ([], "no exit layers")]
)
def test_bad_placement(layers, fragment):
    with pytest.raises(EEBenchError, match=fragment):
        exit_layers(ExplicitPlacementConfig(layers=layers), 12)


def test_max_coverage_by_hand():
    unc = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    agree = torch.tensor([1, 1, 0, 1, 0], dtype=torch.bool)
    # running agreement: 1, 1, 2/3, 3/4, 3/5
    assert max_coverage(unc, agree, 0.75) == pytest.approx(0.4)
    assert max_coverage(unc, agree, 0.7) == pytest.approx(0.4)
    assert max_coverage(unc, agree, 0.6) == pytest.approx(0.5)
    assert max_coverage(unc, agree, 1.0) == pytest.approx(0.2)
    assert max_coverage(unc, ~agree & False, 0.5) == NEVER_EXIT


def test_max_coverage_never_splits_ties():
    unc = torch.tensor([0.1, 0.2, 0.2])
    agree = torch.tensor([1, 1, 0], dtype=torch.bool)
    # cutting inside the tie at 0.2 would let the disagreeing token out too, so only 0.1 qualifies for 1.0
    assert max_coverage(unc, agree, 1.0) == pytest.approx(0.1)


def test_simulation_counts_heads_in_cost():
    trace = Trace(
        {"entropy": torch.tensor([[0.1, 0.9, 0.9, 0.9], [0.1, 0.1, 0.9, 0.9]])},
        torch.tensor([[1, 2, 3, 4], [1, 2, 3, 9]]),
        torch.tensor([1, 2, 5, 4]),
    )
    costs = CostModel(num_layers=8, exit_layers=[1, 3], block_cost=10.0, head_cost=5.0, lm_head_cost=5.0)
    out = simulate(trace, ExitPolicy([1, 3], "entropy", [0.5, 0.5]), costs)
    # token0 exits at head0 (layer 1), token1 at head1 (layer 3), tokens 2, 3 go to the end.
    assert out["fraction"] == {"1": 0.25, "3": 0.25, "final": 0.5}
    assert out["agreement"] == 1.0
    assert out["mean_layers"] == pytest.approx((2 + 4 + 8 + 8) / 4)
    full = 8 * 10 + 5
    expected = full / ((2 * 10 + 5) / 4 + (4 * 10 + 10) / 4 + 2 * (full + 10) / 4)
    assert out["theoretical_speedup"] == pytest.approx(expected)


def test_policy_round_trips_native_thresholds():
    policy = ExitPolicy([1, 2], "max_prob", [-0.7, -math.inf])
    assert policy.native_thresholds() == [0.7, None]
    assert ExitPolicy.from_dict(policy.to_dict()).thresholds == policy.thresholds
