"""Exit statistics on the evaluation tasks' own tokens drive the theoretical Pareto axis."""
from __future__ import annotations

import math

import pytest
from test_evaluation import _ee_model, _instances
from test_reporting import make_results

from eebench.analysis.pareto import SPEEDUP_COLUMNS, runs_to_frame
from eebench.engine.flops import CostModel
from eebench.evaluation.lm import EarlyExitLM
from eebench.evaluation.runner import task_exit_stats
from eebench.exits.policy import ExitPolicy
from eebench.reporting.sections import theoretical_source
from eebench.tracking.contract import RunResult


def _evaluate(ee, thresholds: list[float]):
    lm = EarlyExitLM(ee_model=ee, policy=ExitPolicy([1, 3], "entropy", thresholds))
    lm.loglikelihood(_instances())
    return lm


def test_task_exit_stats_use_the_scored_task_tokens_and_the_cost_model(tiny_model_dirs):
    ee = _ee_model(tiny_model_dirs["llama"])
    costs = CostModel.from_layered(ee.backbone.layered, ee.heads)
    never, always = _evaluate(ee, [-math.inf, -math.inf]), _evaluate(ee, [math.inf, math.inf])
    scored = sum(item.logprob.shape[1] for item in always.store.items.values())  # every continuation token
    full = task_exit_stats(never, [1, 3], costs)
    assert full["fraction"] == {"1": 0.0, "3": 0.0, "final": 1.0} and full["tokens"] == scored
    assert full["agreement"] == 1.0 and full["mean_layers"] == ee.backbone.num_layers
    assert full["theoretical_speedup"] == pytest.approx(1 / (1 + costs.no_exit_overhead()))
    head = task_exit_stats(always, [1, 3], costs)
    assert head["fraction"] == {"1": 1.0, "3": 0.0, "final": 0.0} and head["mean_layers"] == 2
    assert head["depth_speedup"] == ee.backbone.num_layers / 2 and head["theoretical_speedup"] > 1
    # Agreement with the full model is bounded by what the stored greedy flags say: both right -> agree,
    # exactly one right -> disagree.
    items = list(always.store.items.values())
    both = sum(int((i.greedy[0] & i.greedy[-1]).sum()) for i in items)
    one = sum(int((i.greedy[0] ^ i.greedy[-1]).sum()) for i in items)
    assert both / scored <= head["agreement"] <= 1 - one / scored and head["agreement_tokens"] == scored
    assert task_exit_stats(EarlyExitLM(ee_model=ee, exits=False), [1, 3], costs) is None  # nothing evaluated


def test_theoretical_axis_comes_from_task_tokens_when_recorded():
    with_tasks = make_results(threshold=0.8, theoretical=1.5)
    with_tasks["exit_tasks"]["theoretical_speedup"] = 1.2  # the tasks' tokens exit less than the prose
    prose_only = make_results(threshold=0.9, theoretical=1.6)
    prose_only.pop("exit_tasks")
    assert RunResult.from_dict(prose_only).exit_tasks is None
    frame = runs_to_frame([with_tasks, prose_only]).set_index("threshold")
    axis = SPEEDUP_COLUMNS["theoretical"]
    assert frame.loc[0.8, axis] == 1.2 and frame.loc[0.8, "theoretical_speedup"] == 1.5  # held-out kept beside it
    assert frame.loc[0.8, "task_theoretical_speedup"] == 1.2 and frame.loc[0.8, "axis_theoretical_source"] == "tasks"
    assert frame.loc[0.9, axis] == 1.6 and frame.loc[0.9, "axis_theoretical_source"] == "heldout"
    assert theoretical_source(frame.iloc[:1]) == "on the evaluation tasks' own tokens (the data the accuracy comes from)"
    assert theoretical_source(frame) == ("1 point(s) on the evaluation tasks' own tokens (the data the accuracy comes "
                                         "from); 1 point(s) on held-out prose (no evaluation tasks)")
