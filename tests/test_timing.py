"""Generation timing: structure and consistency of the measured fields (never how fast anything is)."""
import importlib.util
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT
from engine_support import median_entropy_policy, random_prompts, single_thread, tiny_backbone

from eebench.config import TimingConfig
from eebench.engine.generate import generate
from eebench.errors import EEBenchError
from eebench.timing.generation import (
    compare_generation,
    generate_batches,
    generated_rows,
    measure_generation,
    prompt_batches,
)
from eebench.timing.timer import interleaved_runs

NEW = 6
PROMPTS = 3  # with batch_size=2: one full batch and one partial batch
WORKLOADS = ("full", "early_exit")


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def setup(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["llama"])
    prompts = random_prompts([8] * PROMPTS, seed=5)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    return backbone, heads, policy, [p[None] for p in prompts]


@pytest.fixture(scope="module")
def timings(setup):
    """measure_generation at batch sizes 1 and 2 on the same prompts."""
    backbone, heads, policy, prompts = setup
    with single_thread():
        return {size: measure_generation(backbone, heads, policy, prompts, TimingConfig(
            num_prompts=PROMPTS, prompt_tokens=8, max_new_tokens=NEW, warmup=1, repeats=2, batch_size=size))
            for size in (1, 2)}


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.parametrize("batch_size", [1, 2])
def test_timing_fields_are_present_finite_and_positive(timings, batch_size):
    timing = timings[batch_size]
    scalars = ["speedup", "speedup_min", "speedup_max", "decode_speedup", "decode_speedup_min",
               "decode_speedup_max", "process_peak_rss_mib"]
    for workload in WORKLOADS:
        scalars += [f"{workload}_{name}" for name in (
            "tokens_per_s", "prefill_seconds", "decode_tokens_per_s", "decode_ms_per_token", "engine_kv_cache_bytes")]
    for key in scalars:
        assert _positive_number(timing[key]), f"{key}={timing[key]!r}"
    for workload in WORKLOADS:
        for name in ("tokens_per_s", "prefill_seconds", "decode_tokens_per_s"):
            summary = timing[f"{workload}_{name}_spread"]
            assert summary["min"] <= summary["median"] == timing[f"{workload}_{name}"] <= summary["max"]
            assert summary["n"] == 2
        assert timing[f"{workload}_peak_cuda_allocated_mib"] is None  # CPU: no per-workload peak to measure
    assert timing["speedup_min"] <= timing["speedup"] <= timing["speedup_max"]
    assert timing["decode_speedup_min"] <= timing["decode_speedup"] <= timing["decode_speedup_max"]
    assert timing["batch_size"] == batch_size and timing["device"] == "cpu"


@pytest.mark.parametrize("batch_size", [1, 2])
def test_prompt_pass_is_part_of_every_repeat(timings, batch_size):
    timing = timings[batch_size]
    for workload in WORKLOADS:
        repeats = timing[f"{workload}_repeat_seconds"]
        assert len(repeats["prefill"]) == len(repeats["total"]) == 2
        for prefill, total in zip(repeats["prefill"], repeats["total"]):
            assert 0 < prefill < total, workload
        assert timing[f"{workload}_decode_tokens"] == PROMPTS * (NEW - 1)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_decode_rates_agree_with_the_repeat_times(timings, batch_size):
    timing = timings[batch_size]
    batches = math.ceil(PROMPTS / batch_size)
    for workload in WORKLOADS:
        repeats = timing[f"{workload}_repeat_seconds"]
        decode = sorted(t - p for p, t in zip(repeats["prefill"], repeats["total"]))
        # With two repeats the median is the mean of both.
        expected_rate = sum(PROMPTS * (NEW - 1) / d for d in decode) / 2
        expected_ms = sum(1000 * d / (batches * (NEW - 1)) for d in decode) / 2
        assert timing[f"{workload}_decode_tokens_per_s"] == pytest.approx(expected_rate)
        assert timing[f"{workload}_decode_ms_per_token"] == pytest.approx(expected_ms)


def test_batch_size_changes_no_generated_token(timings):
    one, two = timings[1], timings[2]
    for key in ("sequence_exact_match_with_full", "token_match_with_full", "generated_exit_fraction_early",
                "exit_sample", "full_decode_tokens", "early_exit_decode_tokens"):
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
        assert [r for o in alone for r in o.exit_indices] == [r for o in batched for r in o.exit_indices]


def test_engine_reports_its_kv_cache_allocation(setup):
    backbone, heads, policy, _ = setup
    lm, prompt = backbone.layered, random_prompts([8], seed=9)[0]
    one = generate(lm, [prompt], NEW).kv_cache_bytes
    # Same lengths, so the same capacity: every cache tensor doubles with the batch.
    assert generate(lm, [prompt, prompt], NEW).kv_cache_bytes == 2 * one
    # Static exit never runs the deeper blocks, so their keys and values are never allocated.
    assert 0 < generate(lm, [prompt], NEW, strategy="static", exit_layer=1).kv_cache_bytes < one


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("batch_size", -2), ("max_new_tokens", 1)])
def test_bad_timing_config_is_one_line_error(field, value):
    with pytest.raises(EEBenchError) as error:
        TimingConfig(**{field: value})
    message = str(error.value)
    assert f"timing.{field}={value}" in message and "\n" not in message


def test_interleaved_runs_alternate_workloads_and_keep_last_results():
    calls = []
    workloads = {name: (lambda n=name: calls.append(n) or len(calls)) for name in ("a", "b")}
    runs = interleaved_runs(workloads, torch.device("cpu"), warmup=1, repeats=2)
    assert calls == ["a", "b"] * 3
    assert {name: len(seconds) for name, seconds in runs.seconds.items()} == {"a": 2, "b": 2}
    assert runs.last_result == {"a": 5, "b": 6}
    assert runs.peak_cuda_bytes == {"a": None, "b": None}


def test_too_few_new_tokens_for_decode_timing_is_refused():
    with pytest.raises(EEBenchError, match="new_tokens=1 "):
        compare_generation(lambda n: [], lambda n: [], 1, torch.device("cpu"), 0, 1)


def _engine_speed_module():
    spec = importlib.util.spec_from_file_location("engine_speed", ROOT / "benchmarks" / "engine_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_engine_benchmark_reports_prefill_and_decode(setup, capsys):
    bench_module = _engine_speed_module()
    backbone, heads, policy, prompts = setup
    model = SimpleNamespace(backbone=backbone)
    bench = bench_module.Bench(model, prompts, NEW, warmup=0, repeats=1)
    rows = [bench.measure("transformers greedy", bench_module.hf_generate(model, prompts)),
            bench.measure("lazy", lambda n: [generate(backbone.layered, p, n, heads, policy, "lazy") for p in prompts])]
    for row in rows:
        for key in ("tokens_per_s", "full_tokens_per_s", "speedup", "prefill_seconds", "decode_tokens_per_s",
                    "decode_ms_per_token", "full_decode_tokens_per_s", "decode_speedup"):
            assert _positive_number(row[key]), f"{row['method']} {key}={row[key]!r}"
        assert row["decode_tokens"] == PROMPTS * (NEW - 1)
    assert rows[0]["exact_match"] == 1.0  # transformers' greedy decoding equals the engine's
    lazy_equal_full = [torch.equal(generate(backbone.layered, p, NEW, heads, policy, "lazy").tokens,
                                   generate(backbone.layered, p, NEW).tokens) for p in prompts]
    assert rows[1]["exact_match"] == pytest.approx(sum(lazy_equal_full) / PROMPTS)
    assert rows[0]["engine_kv_cache_bytes"] is None and rows[1]["engine_kv_cache_bytes"] > 0
    bench_module.print_table(rows)
    assert "| prefill_ms | decode_tokens_per_s | decode_ms_per_token |" in capsys.readouterr().out


def test_report_table_shows_decode_rates_and_latency(timings):
    from test_reporting import make_results

    from eebench.analysis.pareto import runs_to_frame
    from eebench.reporting.document import Table
    from eebench.reporting.sections import results_tables

    timed = {**make_results(backbone="tiny", threshold=0.9), "timing": timings[1]}  # as measure_generation wrote it
    untimed = {**make_results(backbone="tiny", threshold=0.8), "timing": None}
    frame = runs_to_frame([timed, untimed])
    assert frame["decode_speedup"].tolist()[1] == timings[1]["decode_speedup"]
    assert frame["timing_batch_size"].tolist()[1] == 1
    table = next(block for block in results_tables(frame) if isinstance(block, Table))
    rows = {row[0]: dict(zip(table.headers, row)) for row in table.rows}
    expected = f"{timings[1]['full_decode_ms_per_token']:.1f} / {timings[1]['early_exit_decode_ms_per_token']:.1f}"
    assert rows["0.9"]["decode ms/token full / EE"] == expected
    assert rows["0.8"]["decode tok/s full / EE"] == "–"  # a run with timing=none
