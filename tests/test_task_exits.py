"""Exit statistics on the evaluation tasks' own tokens drive the theoretical Pareto axis."""

from __future__ import annotations

import math

import pytest
from results_factory import make_results
from test_evaluation import _ee_model, _instances

from eebench.analysis.pareto import SPEEDUP_COLUMNS, add_pareto_flags, runs_to_frame
from eebench.engine.flops import CostModel
from eebench.evaluation.lm import EarlyExitLM
from eebench.evaluation.runner import eval_decoders, task_exit_stats
from eebench.exits.policy import ExitPolicy
from eebench.reporting.findings import findings_items
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
    # Every token leaves at block 1 but each request's first, which the prompt pass gives at full depth.
    head, first = task_exit_stats(always, [1, 3], costs), len(always.store.items)
    assert head["fraction"] == {"1": 1 - first / scored, "3": 0.0, "final": first / scored}
    layers = ee.backbone.num_layers
    assert head["mean_layers"] == pytest.approx((2 * (scored - first) + layers * first) / scored)
    assert head["depth_speedup"] == pytest.approx(layers / head["mean_layers"]) and head["theoretical_speedup"] > 1
    # Agreement with the full model is bounded by what the stored greedy flags say: both right -> agree,
    # exactly one right -> disagree (first tokens are the full model's own).
    items = list(always.store.items.values())
    both = first + sum(int((i.greedy[0, 1:] & i.greedy[-1, 1:]).sum()) for i in items)
    one = sum(int((i.greedy[0, 1:] ^ i.greedy[-1, 1:]).sum()) for i in items)
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
    assert theoretical_source(frame) == (
        "1 point(s) on the evaluation tasks' own tokens (the data the accuracy comes "
        "from); 1 point(s) on held-out prose (no evaluation tasks)"
    )


def test_copy_and_skip_accuracy_is_labelled_exact_kv_and_kept_off_backbone_fronts():
    assert eval_decoders("lazy") == {
        "loglikelihood": "teacher_forced_exact_kv",
        "generate_until": "engine:lazy",
        "strategy": "lazy",
        "accuracy": "own_decoding",
        "first_token": "final_layer",
    }
    assert eval_decoders("skip")["accuracy"] == "exact_kv" and eval_decoders("copy")["generate_until"] == "engine:copy"
    lazy, skip = make_results(threshold=0.9, theoretical=1.5), make_results(threshold=0.9, theoretical=2.0)
    lazy["eval_decoders"], skip["eval_decoders"] = eval_decoders("lazy"), eval_decoders("skip")
    skip["timing"]["strategy"] = "skip"
    frame = add_pareto_flags(runs_to_frame([lazy, skip])).set_index("timing_strategy")
    # skip would dominate lazy on the backbone front (same accuracy, faster), but its accuracy is not its own.
    assert frame.loc["lazy", "pareto_backbone_theoretical"] and not frame.loc["skip", "pareto_backbone_theoretical"]
    assert frame.loc["skip", "pareto_theoretical"]  # on its own family's front, labelled by strategy
    assert frame.loc["skip", "family"].endswith("strategy=skip")
    notes = [item for item in findings_items(frame.reset_index(), 0) if "exact-KV" in item]
    assert len(notes) == 1 and notes[0].startswith("1 point(s) decode with `copy` or `skip`")
    ranking = [item for item in findings_items(frame.reset_index(), 0) if item.startswith("**tiny-a**")]
    assert len(ranking) == 1 and "strategy=lazy" in ranking[0] and "strategy=skip" not in ranking[0]
