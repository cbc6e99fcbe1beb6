"""Hand-made results.json contents and sweep folders for the analysis, report and tracking tests (numbers are
fixtures, not measurements), one builder per results block, importable by any test module."""

from __future__ import annotations

from pathlib import Path

from eebench.analysis.paired import paired_change
from eebench.tracking.contract import SCHEMA_VERSION
from eebench.tracking.results import write_error, write_results
from eebench.tracking.schema import unbuild

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (backbone, threshold, early-exit acc, full acc, measured speedup, theoretical speedup)
POINTS = [
    ("tiny-a", 0.80, 0.40, 0.43, 1.50, 1.80),
    ("tiny-a", 0.90, 0.42, 0.43, 1.30, 1.50),
    ("tiny-a", 0.95, 0.43, 0.43, 1.10, 1.20),
    ("tiny-b", 0.80, 0.50, 0.52, 1.20, 1.60),  # dominated by tiny-b@0.9 on measured speedup
    ("tiny-b", 0.90, 0.51, 0.52, 1.30, 1.40),
    ("tiny-b", 0.95, 0.525, 0.52, 0.90, 1.10),  # slower than the full model
]


EXIT_LAYERS = [5, 11, 17, 23]
PAIRED_EXAMPLES = 200  # examples per fixture task: every POINTS change is a whole number of them
SAMPLE_WORDS = " The early exit head lets easy tokens leave , while hard ones run the full model .".split(" ")[1:]


def make_curves(threshold: float) -> list[dict]:
    """Per-head reliability bins and threshold->coverage grid shaped like real entropy curves."""
    curves = []
    for index, layer in enumerate(EXIT_LAYERS):
        values = [0.2 + 0.5 * b for b in range(10)]
        reliability = [
            {"value": v, "agreement": max(0.0, 1 - 0.08 * b / (index + 1)), "count": 40 + 3 * b} for b, v in enumerate(values)
        ]
        grid = [0.1 * g for g in range(1, 21)]
        coverage = [
            {"threshold": t, "coverage": min(1.0, t / 2.0 * (index + 1) / 4), "agreement": max(0.0, 1 - 0.05 * t / (index + 1))}
            for t in grid
        ]
        curves.append({"layer": layer, "reliability": reliability, "coverage": coverage})
    return curves


def make_exit_sample(threshold: float) -> dict:
    # Lower targets let tokens out earlier; the same word always gets the same exit at one threshold.
    exits = [str(EXIT_LAYERS[(len(w) + int(threshold * 100)) % 4]) if len(w) < 5 else "final" for w in SAMPLE_WORDS]
    return {"prompt": "Early exit in one sentence:", "tokens": [[" " + w, e] for w, e in zip(SAMPLE_WORDS, exits)]}


def make_diagnostics(threshold: float) -> dict:
    """The calibration, curves and per-token exit sample that newer results.json files carry."""
    per_head = [
        {
            "layer": layer,
            "threshold": 0.5 + i * threshold,
            "coverage": min(1.0, (0.5 + i * threshold) / 2 * (i + 1) / 4),
            "agreement": threshold,
        }
        for i, layer in enumerate(EXIT_LAYERS)
    ]
    return {
        "calibration": {
            "method": "max_coverage",
            "target": threshold,
            "thresholds": [1.2, 0.0, 1.5, 2.0],
            "calibration_agreement": threshold,
            "heldout_agreement": threshold,
            "per_head_heldout": per_head,
        },
        "curves": make_curves(threshold),
        "exit_sample": make_exit_sample(threshold),
    }


def make_workload(tokens_per_s: float) -> dict:
    spread = {"median": tokens_per_s, "min": tokens_per_s * 0.95, "max": tokens_per_s * 1.05, "n": 3}
    return {
        "tokens_per_s": tokens_per_s,
        "tokens_per_s_spread": spread,
        "prefill_seconds": 0.05,
        "prefill_seconds_spread": {"median": 0.05, "min": 0.04, "max": 0.06, "n": 3},
        "decode_tokens_per_s": tokens_per_s * 1.1,
        "decode_tokens_per_s_spread": spread,
        "decode_ms_per_token": 1000 / (tokens_per_s * 1.1),
        "repeat_seconds": {"prefill": [0.05] * 3, "total": [1.0] * 3},
        "decode_tokens": 188,
        "peak_cuda_allocated_mib": None,
        "engine_kv_cache_bytes": 4096,
    }


def make_ratio(name: str, value: float) -> dict:
    return {
        name: value,
        f"{name}_ci95": [value - 0.05, value + 0.05],
        f"{name}_min": value - 0.05,
        f"{name}_max": value + 0.05,
        f"{name}_median_of_repeats": value,
    }


def make_timing(speedup: float) -> dict:
    """A timing section as measure_generation writes it (fixture numbers)."""
    timing = {}
    for name, value in (
        ("speedup", speedup),
        ("decode_speedup", speedup),
        ("engine_full_speedup", 1.0),
        ("engine_full_decode_speedup", 1.0),
        ("speedup_vs_engine_full", speedup),
        ("decode_speedup_vs_engine_full", speedup),
    ):
        timing.update(make_ratio(name, value))
    for workload, rate in (("transformers", 20.0), ("full", 20.0), ("early_exit", 20.0 * speedup)):
        timing.update({f"{workload}_{key}": value for key, value in make_workload(rate).items()})
    timing.update(
        {
            "reference": "transformers_greedy",
            "seed": 0,
            "repeat_orders": [["full", "early_exit"]] * 3,
            "bootstrap_resamples": 2000,
            "ci_method": "fixture",
            "sequence_exact_match_with_reference": 0.5,
            "token_match_with_reference": 0.9,
            "engine_full_sequence_exact_match_with_reference": 1.0,
            "engine_full_token_match_with_reference": 1.0,
            "sequence_exact_match_with_full": 0.5,
            "token_match_with_full": 0.9,
            "depth_bound": 3.0,
            "flags": [],
            "measurement_error": False,
            "strategy": "lazy",
            "device": "cpu",
            "dtype": "float32",
            "prompts": "heldout",
            "num_prompts": 4,
            "prompt_tokens": 64,
            "new_tokens_per_prompt": 48,
            "batch_size": 1,
            "warmup": 1,
            "repeats": 5,
            "threads": 2,
            "generated_exit_fraction_early": 0.4,
            "exit_sample": {"prompt": "", "tokens": []},
            "process_peak_rss_mib": 900.0,
            "load_average_1min": 1.0,
            "cpu_model": "fixture CPU",
        }
    )
    return timing


def make_paired(task: str, acc: float, base: float, n: int = PAIRED_EXAMPLES) -> dict:
    """paired_tasks' record of per-example 0/1 scores averaging to ``acc`` (early exit) and ``base`` (full model):
    two examples flip each way besides the net change."""
    net = round((acc - base) * n)
    improved, worsened = 2 + max(net, 0), 2 + max(-net, 0)
    both_right = round(base * n) - worsened
    early = [1.0] * improved + [0.0] * worsened + [1.0] * both_right
    full = [0.0] * improved + [1.0] * worsened + [1.0] * both_right
    early, full = ({str(doc): score for doc, score in enumerate(side + [0.0] * (n - len(side)))} for side in (early, full))
    return unbuild(paired_change(task, "acc", early, full))


def make_results(backbone="tiny-a", threshold=0.9, acc=0.42, base=0.43, speedup=1.3, theoretical=1.5, diagnostics=False):
    """A complete results.json (schema of eebench.tracking.contract); ``diagnostics`` fills calibration
    curves and the exit sample, whose figures make a report several times slower to draw, so only the
    tests that look at them ask. The accuracy change is paired by example (``make_paired``)."""
    results = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "backbone": backbone,
        "backbone_path": "/models/x",
        "backbone_dtype": "float32",
        "readout": "full",
        "num_layers": 30,
        "exit_layers": EXIT_LAYERS,
        "placement": "equal",
        "head": "linear",
        "confidence": "entropy",
        "calibration_method": "max_coverage",
        "threshold": threshold,
        "thresholds": [1.2, None, 1.5, 2.0],
        "exit_rule": "entropy <= threshold",
        "exit": {
            "fraction": {"5": 0.1, "11": 0.2, "17": 0.1, "23": 0.1, "final": 0.5},
            "mean_layers": 21.3,
            "agreement": threshold,
            "theoretical_speedup": theoretical,
            "depth_speedup": theoretical,
            "tokens": 1000,
        },
        "calibration": {
            "method": "max_coverage",
            "target": threshold,
            "thresholds": [1.2, None, 1.5, 2.0],
            "calibration_agreement": threshold,
            "heldout_agreement": threshold,
            "per_head_heldout": [],
        },
        "curves": [],
        "cost_model": {
            "num_layers": 30,
            "exit_layers": EXIT_LAYERS,
            "block_cost": 1.0,
            "head_cost": 8.0,
            "lm_head_cost": 8.0,
            "gate_cost": 0.0,
            "gated": False,
            "no_exit_overhead": 1.2,
            "unit": "weights read per token",
        },
        "data": {"source": "fixture", "splits": {"train": 100, "calibration": 10, "heldout": 10}, "note": "fixture"},
        "heads_training": {},
        "artifacts": {
            "heads_dir": "/nonexistent/heads",
            "calibration_trace_dir": "/nonexistent/trace",
            "backbone_config": {"name": backbone},
            "calibration_config": {"method": "max_coverage"},
        },
        "tasks": {"eebench_bb_x": {"acc": acc, "acc_stderr": 0.03}},
        "baseline_tasks": {"eebench_bb_x": {"acc": base, "acc_stderr": 0.03}},
        "paired_tasks": [make_paired("eebench_bb_x", acc, base)],
        "baseline_cache_key": "fixture",
        "eval_mode": "teacher-forced simulation (fixture)",
        "eval_exit_fraction": {"5": 0.2, "final": 0.8},
        "exit_tasks": {
            "fraction": {"5": 0.2, "11": 0.0, "17": 0.0, "23": 0.0, "final": 0.8},
            "mean_layers": 25.2,
            "agreement": threshold,
            "theoretical_speedup": theoretical,
            "depth_speedup": theoretical,
            "tokens": 500,
            "agreement_tokens": 400,
        },
        "timing": make_timing(speedup),
        "provenance": {
            "git_sha": "abc123",
            "packages": {"torch": "2.13.0"},
            "python": "3.11",
            "platform": "Linux",
            "hostname": "testhost",
            "cpu_count": 2,
            "cuda_device": None,
            "device": "cpu",
            "seed": 0,
            "time": "2025-01-02T03:04:05+00:00",
        },
    }
    if diagnostics:
        extra = make_diagnostics(threshold)
        results["timing"]["exit_sample"] = extra.pop("exit_sample")
        results["calibration"] = extra["calibration"]
        results["curves"] = extra["curves"]
    return results


def make_sweep(sweep_dir: Path, diagnostics: bool = False) -> Path:
    """Jobs 0-5 complete, 6 failed with error.json, 7 has a corrupt results.json."""
    for job, point in enumerate(POINTS):
        write_results(sweep_dir / str(job), make_results(*point, diagnostics=diagnostics))
    write_error(sweep_dir / "6", RuntimeError("out of memory"), {"threshold": 0.99})
    (sweep_dir / "7").mkdir(parents=True)
    (sweep_dir / "7" / "results.json").write_text('{"status": "comp', encoding="utf-8")
    return sweep_dir
