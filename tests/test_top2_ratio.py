"""The top2_ratio confidence metric, end to end through the registry, config validation and an exit policy."""

import pytest
import torch

from eebench.config import validate
from eebench.exits.confidence import exit_rule, metric_values, uncertainty
from eebench.exits.policy import ExitPolicy


def test_top2_ratio_values_config_and_exit_rule():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.30, 0.15, 0.55], [0.4, 0.4, 0.2]]))
    assert metric_values(logits)["top2_ratio"].tolist() == pytest.approx([0.5, 0.30 / 0.55, 1.0])
    assert validate({"confidence": {"metric": "top2_ratio"}}).confidence.metric == "top2_ratio"
    assert exit_rule("top2_ratio") == "top2_ratio <= threshold"
    policy = ExitPolicy([3], "top2_ratio", [0.55])  # uncertainty units equal the metric's: lower exits
    assert policy.confident(0, logits).tolist() == [True, True, False]
    assert uncertainty("top2_ratio", logits).tolist() == pytest.approx([0.5, 0.30 / 0.55, 1.0])
