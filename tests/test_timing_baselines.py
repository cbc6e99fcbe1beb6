"""Fixed-block baselines (timing.baselines): timed in the point's own schedule, bad input, Hydra composition."""

import re

import pytest
from conftest import ROOT
from engine_support import single_thread, timing_setup

from eebench.engine.flops import CostModel
from eebench.errors import EEBenchError
from eebench.timing.config import TimingConfig
from eebench.timing.generation import measure_generation
from eebench.tracking.contract_timing import TimingResult
from eebench.tracking.schema import build, unbuild

NEW = 6
REPEATS = 5


@pytest.fixture(scope="module")
def setup(tiny_model_dirs):
    return timing_setup(tiny_model_dirs["llama"], 3)


def test_baselines_are_timed_in_the_points_schedule(setup):
    """timing.baselines: each fixed-block baseline is one more workload of the same schedule, with its own ratios,
    CI and token match; the lossless ones reproduce transformers greedy exactly in float32."""
    backbone, heads, policy, prompts = setup
    costs = CostModel.from_layered(backbone.layered, heads)
    cfg = TimingConfig(
        max_new_tokens=NEW,
        warmup=0,
        repeats=REPEATS,
        threads=1,
        baselines=["static", "layerskip", "assistant_early_exit"],
        baseline_draft_length=2,
    )
    with single_thread():
        result = measure_generation(backbone, heads, policy, prompts, cfg, costs)
    timing = unbuild(result)  # as results.json stores it
    rows = {row["name"]: row for row in timing["baselines"]}
    assert list(rows) == ["static", "layerskip", "assistant_early_exit"]
    for name in ("static", "layerskip", "assistant_early_exit"):
        assert rows[name]["exit_layer"] == heads.exit_layers[-1]
    # Every workload ran once per repeat in the same schedule.
    workloads = {"transformers", "full", "candidate", *rows}
    assert all({phase.split("/")[0] for phase in order} == workloads for order in timing["repeat_orders"])
    for row in rows.values():
        lo, hi = row["speedup_ci95"]
        assert lo <= row["speedup"] <= hi
    for lossless in ("layerskip", "assistant_early_exit"):
        assert rows[lossless]["lossless"] and rows[lossless]["token_match_with_reference"] == 1.0
        assert rows[lossless]["draft_length"] == 2
    assert 0.0 <= rows["layerskip"]["acceptance"] <= 1.0 and rows["assistant_early_exit"].get("acceptance") is None
    assert rows["static"]["draft_length"] is None and rows["static"]["depth_bound"] > 1.0
    assert build(TimingResult, timing, "timing") == result  # back from the file, field for field
    assert [b.name for b in result.baselines] == list(rows)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"baselines": ["bogus"]}, "timing.baselines='bogus' is not supported; allowed: static, layerskip"),
        ({"baselines": ["static", "static"]}, "names one twice"),
        ({"baseline_draft_length": 0}, "timing.baseline_draft_length=0 must be > 0"),
        ({"strategy": "layerskip"}, "time it with timing.baselines=[layerskip]"),
    ],
)
def test_bad_baseline_config_is_one_line_error(overrides, message):
    with pytest.raises(EEBenchError, match=re.escape(message)):
        TimingConfig(**overrides)


def test_baseline_exit_layer_must_be_in_the_model_and_static_needs_a_head(setup):
    from eebench.timing.baselines import baseline_exit_layer, baseline_workload

    backbone, heads, _, prompts = setup
    with pytest.raises(
        EEBenchError, match=f"timing.baseline_exit_layer=99 is outside the model; allowed: 0..{backbone.num_layers - 2}"
    ):
        baseline_exit_layer(99, heads.exit_layers, backbone.num_layers)
    no_head = next(i for i in range(backbone.num_layers - 1) if i not in heads.exit_layers)
    with pytest.raises(EEBenchError, match="has no trained head for the static baseline"):
        baseline_workload("static", backbone, heads, [prompts], no_head, 1)


def test_baselines_compose_from_the_command_line():
    from hydra import compose, initialize_config_dir

    from eebench.config import register_configs, validate

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = validate(
            compose("config", overrides=["timing.baselines=[static,assistant_early_exit]", "timing.baseline_exit_layer=17"])
        )
        default = validate(compose("config"))
        with pytest.raises(EEBenchError, match="timing.baselines='dssd' is not supported"):
            validate(compose("config", overrides=["timing.baselines=[dssd]"]))
    assert (cfg.timing.baselines, cfg.timing.baseline_exit_layer) == (["static", "assistant_early_exit"], 17)
    assert (default.timing.baselines, default.timing.baseline_exit_layer, default.timing.baseline_draft_length) == ([], None, 4)
