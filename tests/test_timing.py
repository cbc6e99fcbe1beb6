"""Generation timing: structure and consistency of the measured fields (never how fast anything is)."""

import math
import statistics

import pytest
import torch
from engine_support import random_prompts, single_thread, timing_setup

from eebench.config import EvalConfig, ExperimentConfig, TimingConfig
from eebench.engine.flops import CostModel
from eebench.engine.generate import generate
from eebench.errors import EEBenchError
from eebench.timing.config import check_draft_exits
from eebench.timing.generation import measure_generation, time_schedule
from eebench.timing.timer import interleaved_runs
from eebench.timing.workloads import generate_batches, generated_rows, prompt_batches
from eebench.tracking.schema import unbuild

NEW = 6
PROMPTS = 3  # with batch_size=2: one full batch and one partial batch
REPEATS = 5
WORKLOADS = ("transformers", "full", "early_exit")
RATIOS = {  # whole-generation ratio, its decode-only twin, baseline workload, candidate workload
    "speedup": ("decode_speedup", "transformers", "early_exit"),
    "engine_full_speedup": ("engine_full_decode_speedup", "transformers", "full"),
    "speedup_vs_engine_full": ("decode_speedup_vs_engine_full", "full", "early_exit"),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tiny_model_dirs):
    return timing_setup(tiny_model_dirs["llama"], PROMPTS)


@pytest.fixture(scope="module")
def timings(setup):
    """measure_generation at batch sizes 1 and 2 on the same prompts, as results.json stores them."""
    backbone, heads, policy, prompts = setup
    costs = CostModel.from_layered(backbone.layered, heads)
    with single_thread():
        return {
            size: unbuild(
                measure_generation(
                    backbone,
                    heads,
                    policy,
                    prompts,
                    TimingConfig(
                        num_prompts=PROMPTS,
                        prompt_tokens=8,
                        max_new_tokens=NEW,
                        warmup=1,
                        repeats=REPEATS,
                        batch_size=size,
                        threads=1,
                    ),
                    costs,
                )
            )
            for size in (1, 2)
        }


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.parametrize("batch_size", [1, 2])
def test_timing_fields_are_present_finite_and_positive(timings, batch_size):
    timing = timings[batch_size]
    scalars = ["process_peak_rss_mib", "depth_bound"]
    for ratio, (decode, _, _) in RATIOS.items():
        scalars += [f"{name}{suffix}" for name in (ratio, decode) for suffix in ("", "_min", "_max")]
    for workload in WORKLOADS:
        scalars += [
            f"{workload}_{name}" for name in ("tokens_per_s", "prefill_seconds", "decode_tokens_per_s", "decode_ms_per_token")
        ]
    scalars += ["full_engine_kv_cache_bytes", "early_exit_engine_kv_cache_bytes"]
    for key in scalars:
        assert _positive_number(timing[key]), f"{key}={timing[key]!r}"
    for workload in WORKLOADS:
        for name in ("tokens_per_s", "prefill_seconds", "decode_tokens_per_s"):
            summary = timing[f"{workload}_{name}_spread"]
            assert summary["min"] <= summary["median"] == timing[f"{workload}_{name}"] <= summary["max"]
            assert summary["n"] == REPEATS
        assert timing[f"{workload}_peak_cuda_allocated_mib"] is None  # CPU: no per-workload peak to measure
    assert timing["transformers_engine_kv_cache_bytes"] is None  # not the engine
    assert timing["batch_size"] == batch_size and timing["device"] == "cpu"
    assert timing["reference"] == "transformers_greedy" and timing["prompts"] == "heldout"
    assert timing["num_prompts"] == PROMPTS and timing["threads"] == 1 and timing["dtype"] == "float32"
    assert timing["seed"] == 0 and timing["bootstrap_resamples"] == 2000 and "bootstrap" in timing["ci_method"]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_prompt_pass_is_part_of_every_repeat(timings, batch_size):
    timing = timings[batch_size]
    for workload in WORKLOADS:
        repeats = timing[f"{workload}_repeat_seconds"]
        assert len(repeats["prefill"]) == len(repeats["total"]) == REPEATS
        for prefill, total in zip(repeats["prefill"], repeats["total"]):
            assert 0 < prefill < total, workload
        assert timing[f"{workload}_decode_tokens"] == PROMPTS * (NEW - 1)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_decode_rates_agree_with_the_repeat_times(timings, batch_size):
    timing = timings[batch_size]
    batches = math.ceil(PROMPTS / batch_size)
    for workload in WORKLOADS:
        repeats = timing[f"{workload}_repeat_seconds"]
        decode = [t - p for p, t in zip(repeats["prefill"], repeats["total"])]
        expected_rate = statistics.median(PROMPTS * (NEW - 1) / d for d in decode)
        expected_ms = statistics.median(1000 * d / (batches * (NEW - 1)) for d in decode)
        assert timing[f"{workload}_decode_tokens_per_s"] == pytest.approx(expected_rate)
        assert timing[f"{workload}_decode_ms_per_token"] == pytest.approx(expected_ms)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_every_ratio_is_summed_repeat_times_with_a_ci_around_it(timings, batch_size):
    timing = timings[batch_size]
    for ratio, (decode, baseline, candidate) in RATIOS.items():
        base, cand = timing[f"{baseline}_repeat_seconds"], timing[f"{candidate}_repeat_seconds"]
        assert timing[ratio] == pytest.approx(sum(base["total"]) / sum(cand["total"]))
        base_decode = sum(t - p for p, t in zip(base["prefill"], base["total"]))
        cand_decode = sum(t - p for p, t in zip(cand["prefill"], cand["total"]))
        assert timing[decode] == pytest.approx(base_decode / cand_decode)
        for name in (ratio, decode):
            lo, hi = timing[f"{name}_ci95"]
            assert lo <= timing[name] <= hi, name
            per_repeat = [b / c for b, c in zip(base["total"], cand["total"])] if name == ratio else None
            if per_repeat:
                assert timing[f"{name}_min"] == pytest.approx(min(per_repeat))
    # Every phase of every workload ran once per repeat, in a recorded order.
    assert len(timing["repeat_orders"]) == REPEATS
    assert all(
        sorted(order) == sorted(f"{w}/{p}" for w in ("transformers", "full", "candidate") for p in ("prefill", "total"))
        for order in timing["repeat_orders"]
    )


def test_engine_full_path_equals_transformers_greedy_in_float32(timings):
    for timing in timings.values():
        assert timing["engine_full_sequence_exact_match_with_reference"] == 1.0
        assert timing["engine_full_token_match_with_reference"] == 1.0
        # The early exit is compared with the same tokens either way.
        assert timing["token_match_with_reference"] == timing["token_match_with_full"]


def test_bootstrap_is_reproducible_with_its_seed():
    from eebench.timing.statistics import bootstrap_ratio_ci

    base, cand = [1.0, 1.2, 0.9, 1.1, 1.05, 1.3], [0.8, 1.0, 0.85, 0.7, 0.9, 1.1]
    assert bootstrap_ratio_ci(base, cand, seed=1) == bootstrap_ratio_ci(base, cand, seed=1)
    assert bootstrap_ratio_ci(base, cand, seed=1) != bootstrap_ratio_ci(base, cand, seed=2)
    lo, hi = bootstrap_ratio_ci(base, cand, seed=1)
    assert lo < sum(base) / sum(cand) < hi
    assert bootstrap_ratio_ci([2.0] * 5, [1.0] * 5, seed=0) == [2.0, 2.0]  # no spread, no interval


def _costs() -> CostModel:
    # 8 blocks of cost 10, heads after blocks 1 and 3 of cost 4, the final head of cost 4.
    return CostModel(num_layers=8, exit_layers=[1, 3], block_cost=10.0, head_cost=4.0, lm_head_cost=4.0)


def test_depth_bound_counts_only_the_blocks_the_exits_still_run():
    from eebench.timing.statistics import depth_bound

    costs = _costs()
    assert depth_bound(costs, [0, 0]) == pytest.approx(84 / 20)  # every token after 2 blocks, no head counted
    assert depth_bound(costs, [0, 2]) == pytest.approx(84 / ((20 + 84) / 2))
    assert depth_bound(costs, [2, 2]) == pytest.approx(1.0)
    assert depth_bound(costs, [0, 0], every_block=True) == pytest.approx(84 / 80)  # "full" avoids only the final head
    assert depth_bound(costs, [0, 1]) >= costs.theoretical_speedup(torch.tensor([0, 1]))


def test_speedup_above_its_depth_bound_is_flagged_as_a_measurement_error():
    from eebench.timing.statistics import PairedRatios, bound_for, depth_bound_flags, ratio_of

    costs, exits = _costs(), [2, 2, 2, 1]  # three tokens at full depth, one after 4 blocks: bound 84/73 ~ 1.15
    hf = [1.0, 1.1, 0.95, 1.05, 1.0]
    engine = [1.0, 1.08, 0.97, 1.02, 1.01]

    def flags(early_exit, bound):
        depth_only = PairedRatios(ratio_of(engine, early_exit, 0), ratio_of(engine, early_exit, 0))
        return depth_bound_flags(ratio_of(hf, early_exit, 0), depth_only, ratio_of(hf, engine, 0), bound)

    bound = bound_for("lazy", costs, exits)
    assert flags([t / 1.1 for t in engine], bound) == []
    impossible = flags([t / 13.9 for t in engine], bound)  # the 13.9 on a tiny model
    assert any("above the depth bound" in flag and "speedup_vs_engine_full" in flag for flag in impossible)
    assert bound_for("dssd", costs, exits) is None and flags([t / 13.9 for t in engine], None) == []


def test_batch_size_changes_no_generated_token(timings):
    one, two = timings[1], timings[2]
    for key in (
        "sequence_exact_match_with_full",
        "token_match_with_full",
        "generated_exit_fraction_early",
        "sequence_exact_match_with_reference",
        "token_match_with_reference",
        "exit_sample",
        "full_decode_tokens",
        "early_exit_decode_tokens",
    ):
        assert one[key] == two[key], key
    assert len(one["exit_sample"]["tokens"]) == NEW


@pytest.mark.parametrize("strategy", ["lazy", "dssd"])
def test_batched_workload_equals_one_prompt_at_a_time(setup, strategy):
    backbone, heads, policy, _ = setup
    prompts = random_prompts([5, 9, 3], seed=7)  # different lengths: the batch is ragged
    for kwargs in ({}, {"heads": heads, "policy": policy, "strategy": strategy}):
        alone = generate_batches(backbone.layered, prompt_batches(prompts, 1), NEW, **kwargs)
        batched = generate_batches(backbone.layered, prompt_batches(prompts, 2), NEW, **kwargs)
        assert [o.tokens.shape[0] for o in batched] == [2, 1]
        for row_alone, row_batched in zip(generated_rows(alone), generated_rows(batched)):
            assert torch.equal(row_alone, row_batched)
        assert [r for o in alone for r in o.row_exit_indices] == [r for o in batched for r in o.row_exit_indices]


def test_engine_reports_its_kv_cache_allocation(setup):
    backbone, heads, policy, _ = setup
    lm, prompt = backbone.layered, random_prompts([8], seed=9)[0]
    one = generate(lm, [prompt], NEW).kv_cache_bytes
    # Same lengths, so the same capacity: every cache tensor doubles with the batch.
    assert generate(lm, [prompt, prompt], NEW).kv_cache_bytes == 2 * one
    # Static exit never runs the deeper blocks, so their keys and values are never allocated.
    assert 0 < generate(lm, [prompt], NEW, strategy="static", exit_layer=1).kv_cache_bytes < one


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("batch_size", -2),
        ("max_new_tokens", 1),
        ("threads", 0),
        ("prompts", "bogus"),
        ("repeats", 4),
        ("draft_exits", []),
        ("draft_exits", [-1]),
    ],
)
def test_bad_timing_config_is_one_line_error(field, value):
    with pytest.raises(EEBenchError) as error:
        TimingConfig(**{field: value})
    message = str(error.value)
    assert f"timing.{field}={value}" in message.replace("'", "") and "\n" not in message


def test_draft_exits_must_name_blocks_with_heads():
    check_draft_exits(TimingConfig(draft_exits=[2]), [2, 4])
    check_draft_exits(TimingConfig(enabled=False, draft_exits=[3]), [2, 4])  # untimed: nothing drafts
    with pytest.raises(EEBenchError, match=r"timing.draft_exits=\[3\] names blocks without an exit head \(\[3\]\)"):
        check_draft_exits(TimingConfig(draft_exits=[3]), [2, 4])


def test_task_prompts_need_evaluation_tasks():
    with pytest.raises(EEBenchError, match="timing.prompts=tasks needs evaluation tasks"):
        ExperimentConfig(timing=TimingConfig(prompts="tasks"), eval=EvalConfig(tasks=[]))
    assert ExperimentConfig(timing=TimingConfig(prompts="tasks"), eval=EvalConfig(tasks=["strategyqa"])).timing.prompts == "tasks"


def test_interleaved_runs_follow_a_seeded_random_order_per_repeat():
    calls = []
    names = ("a", "b", "c", "d")
    workloads = {name: (lambda n=name: calls.append(n) or len(calls)) for name in names}
    runs = interleaved_runs(workloads, torch.device("cpu"), warmup=1, repeats=6, seed=3)
    assert calls[:4] == list(names)  # warmup in declaration order, then the recorded orders
    assert calls[4:] == [name for order in runs.orders for name in order]
    assert all(sorted(order) == list(names) for order in runs.orders)
    assert len({tuple(order) for order in runs.orders}) > 1  # the order changes between repeats
    assert interleaved_runs(workloads, torch.device("cpu"), 0, 6, seed=3).orders == runs.orders  # reproducible
    assert interleaved_runs(workloads, torch.device("cpu"), 0, 6, seed=4).orders != runs.orders
    assert {name: len(seconds) for name, seconds in runs.seconds.items()} == dict.fromkeys(names, 6)
    assert runs.last_result == {name: 4 + 4 * 5 + runs.orders[-1].index(name) + 1 for name in names}
    assert runs.peak_cuda_bytes == dict.fromkeys(names)


def test_too_few_new_tokens_for_decode_timing_is_refused():
    with pytest.raises(EEBenchError, match="new_tokens=1 "):
        time_schedule({"a": lambda n: []}, 1, torch.device("cpu"), 0, 5, 0)


def test_report_table_shows_decode_rates_and_latency(timings):
    from results_factory import make_results

    from eebench.analysis.pareto import runs_to_frame
    from eebench.reporting.document import Table
    from eebench.reporting.sections import results_tables

    timed = {**make_results(backbone="tiny", threshold=0.9), "timing": timings[1]}  # as measure_generation wrote it
    untimed = {**make_results(backbone="tiny", threshold=0.8), "timing": None}
    frame = runs_to_frame([timed, untimed])
    by_threshold = frame.set_index("threshold")  # row order follows family labels, not input order
    assert by_threshold.loc[0.9, "decode_speedup"] == timings[1]["decode_speedup"]
    assert by_threshold.loc[0.9, "timing_batch_size"] == 1
    tables = [block for block in results_tables(frame) if isinstance(block, Table)]  # one per family
    rows = {row[0]: dict(zip(table.headers, row)) for table in tables for row in table.rows}
    expected = f"{timings[1]['full_decode_ms_per_token']:.1f} / {timings[1]['early_exit_decode_ms_per_token']:.1f}"
    assert rows["0.9"]["decode ms/token full / EE"] == expected
    assert rows["0.8"]["decode tok/s full / EE"] == "–"  # a run with timing=none


def test_transformers_reference_never_stops_at_the_models_eos(setup):
    """transformers refills a None eos_token_id from the model's generation config: the reference must still produce
    every requested token (as the engine does) when the model's EOS is the greedy choice."""
    from eebench.timing.workloads import transformers_greedy

    backbone, _, _, prompts = setup
    engine = generate(backbone.layered, [prompts[0][0]], NEW).tokens[0]
    config = backbone.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = int(engine[2])  # the model's own EOS is now its third greedy token
    try:
        (reference,) = transformers_greedy(backbone.model, 0, [[prompts[0][0]]])(NEW)
    finally:
        config.eos_token_id = saved
    assert reference.shape == (1, NEW) and torch.equal(reference[0], engine)
