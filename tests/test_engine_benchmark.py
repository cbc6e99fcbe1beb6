"""benchmarks/engine_speed.py: its rows (noise floor, reference, CIs), its CI estimate's provenance, its refusals."""

import json

import pytest
import torch
from conftest import benchmark_module
from engine_support import single_thread
from test_timing import NEW, PROMPTS, REPEATS, setup  # noqa: F401 - the timing tests' fixtures and sizes

from eebench.engine.flops import CostModel
from eebench.errors import EEBenchError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_engine_benchmark_has_noise_floor_reference_and_ci_rows(setup, capsys):  # noqa: F811 - the imported fixture
    bench_module = benchmark_module("engine_speed")
    backbone, heads, policy, prompts = setup
    costs = CostModel.from_layered(backbone.layered, heads)
    bench = bench_module.Bench(backbone, prompts, NEW, warmup=0, repeats=REPEATS)
    lazy_method = bench_module.Method(bench.engine(heads=heads, policy=policy, strategy="lazy"), costs, "lazy")
    static = bench_module.baseline_methods(bench, heads, bench_module.parse_args(["--run-dir", "x", "--baselines", "static"]))
    rows = bench.time_all({"lazy": lazy_method, **static})
    static_name = f"static block {heads.exit_layers[-1]}"
    assert [row["method"] for row in rows] == ["A/A transformers vs itself", "engine full depth", "lazy", static_name]
    aa, engine, lazy, static_row = rows
    assert engine["speedup"] == engine["engine_full_speedup"]
    # One schedule: every row's own repeats are the ones its ratios were paired with.
    assert len(aa["repeat_seconds"]["total"]) == len(lazy["repeat_seconds"]["total"]) == REPEATS
    assert static_row["early_exit_share"] == 1.0 and static_row["depth_bound"] > 1.0
    for row in rows:
        for key in ("speedup", "decode_speedup"):
            lo, hi = row[f"{key}_ci95"]
            assert lo <= row[key] <= hi, (row["method"], key)
    assert engine["sequence_exact_match_with_reference"] == 1.0  # float32: engine full == transformers
    # The depth bound counts no head or gate, so the cost model's own speedup stays below it.
    assert lazy["theoretical_speedup"] <= lazy["depth_bound"]
    assert lazy["measurement_error"] == bool(lazy["flags"])
    assert lazy["decode_tokens"] == PROMPTS * (NEW - 1)
    bench_module.print_table(rows)
    assert "| speedup | speedup_ci95 |" in capsys.readouterr().out


def test_engine_benchmark_ci_estimate_writes_provenance(tiny_model_dirs, tmp_path, capsys):
    out = tmp_path / "estimate.json"
    with single_thread():
        assert (
            benchmark_module("engine_speed").main(
                [
                    "--estimate-ci",
                    "--backbone",
                    str(tiny_model_dirs["llama"]),
                    "--dtype",
                    "float32",
                    "--prompts",
                    "2",
                    "--prompt-tokens",
                    "8",
                    "--new-tokens",
                    "3",
                    "--warmup",
                    "0",
                    "--repeats",
                    "5",
                    "--threads",
                    "1",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    summary = json.loads(out.read_text())
    estimate, provenance = summary["ci_estimate"], summary["provenance"]
    assert summary["dtype"] == "float32" and estimate["repeats"] == 5
    assert estimate["aa_speedup_ci95_half_width"] > 0 and estimate["aa_speedup_repeats_for_target"] >= 5
    for key in ("git_sha", "git_dirty", "packages", "cpu_model", "threads", "load_average_1min", "cuda_device"):
        assert key in provenance, key
    assert provenance["threads"] == 1 and provenance["packages"]["torch"] == torch.__version__


def test_engine_benchmark_refuses_too_few_repeats():
    with pytest.raises(EEBenchError, match="--repeats=3 is too few"):
        benchmark_module("engine_speed").parse_args(["--run-dir", "x", "--repeats", "3"])


def test_engine_benchmark_names_one_dssd_row_per_draft_cap():
    bench_module = benchmark_module("engine_speed")
    assert bench_module.parse_args(["--run-dir", "x", "--max-draft", "2", "5"]).max_draft == [2, 5]
    assert bench_module.parse_args(["--run-dir", "x"]).max_draft == [5]
    args = bench_module.parse_args(["--run-dir", "x", "--max-draft", "2", "5", "--draft-exits", "all", "6,12"])
    rules = bench_module.drafting_rules(args)
    assert rules[:2] == [{"max_draft": 2, "draft_exits": None}, {"max_draft": 2, "draft_exits": [6, 12]}] and len(rules) == 4
    assert bench_module.method_name("", "dssd", 0.8, rules[1], args) == "dssd @0.8 draft<=2 from 6,12"
    assert bench_module.method_name("", "dssd", 0.8, rules[0], args) == "dssd @0.8 draft<=2 from every head"
    assert bench_module.method_name("", "lazy", 0.9, {}, args) == "lazy @0.9"
    one = bench_module.parse_args(["--run-dir", "x"])
    assert (
        bench_module.method_name("linear+full ", "dssd", 0.8, bench_module.drafting_rules(one)[0], one) == "linear+full dssd @0.8"
    )
    with pytest.raises(SystemExit):
        bench_module.parse_args(["--run-dir", "x", "--draft-exits", "6;12"])


def test_engine_benchmark_tells_apart_runs_of_the_same_heads_by_budget():
    # Two runs of one head type and readout would otherwise write the same row names, the later silently replacing the
    # earlier in the schedule.
    labels = benchmark_module("engine_speed").distinct_labels
    assert labels(["linear+full", "low_rank+full"], [1000, 1000]) == ["linear+full", "low_rank+full"]
    assert labels(["linear+full", "linear+full", "low_rank+full"], [131072, 1000000, 131072]) == [
        "linear+full@131072tok",
        "linear+full@1000000tok",
        "low_rank+full",
    ]
    with pytest.raises(EEBenchError, match=r"runs \['linear\+full@5tok'\] are given twice"):
        labels(["linear+full", "linear+full"], [5, 5])
