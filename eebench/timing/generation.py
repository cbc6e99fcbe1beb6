"""Measure greedy generation speed against transformers' greedy decoding, same prompts, same process, interleaved.

The reference is what a user would run instead of eebench: transformers' ``generate(do_sample=False)``
of the same backbone. The engine's own full-depth path is timed in the same schedule, so its overhead
against transformers (``engine_full_speedup``) and the early exit's effect of depth alone
(``speedup_vs_engine_full``) come with every measurement. Statistics: eebench/timing/statistics.py.

Every workload is a function of the number of new tokens. The prompt pass (prefill and the first new
token) is timed as the same workload asked for one token, alternated with the whole generation, and
decode time is their difference per repeat. This rather than per-step timestamps inside the engine: it
times every workload the same way (engine strategies, the speculative ones whose steps emit several
tokens, transformers' ``generate`` in benchmarks/engine_speed.py) and leaves the timed loop untouched.
The price is one extra prompt pass per repeat, and no per-step latency percentiles.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from eebench.config import TimingConfig
from eebench.engine.generate import GenerationOutput
from eebench.errors import require
from eebench.timing.baselines import baseline_result, baseline_workloads
from eebench.timing.breakdown import time_breakdowns
from eebench.timing.statistics import BOOTSTRAP_RESAMPLES, CI_METHOD, bound_for, flag_fields, ratio_fields
from eebench.timing.timer import MIB, cpu_model, interleaved_runs, load_average_1min, process_peak_rss_mib, spread, torch_threads
from eebench.timing.workloads import (
    Workload,
    decoded_exit_indices,
    exit_sample,
    generate_batches,
    generated_rows,
    match_with_reference,
    prompt_batches,
    speculation_fields,
    transformers_greedy,
)

PREFILL_TOKENS = 1  # a run asked for one token does the prompt pass and nothing else

REFERENCE = "transformers_greedy"
# Strategies whose tokens are drafted and then verified by the full model several at a time: a token's
# exit index does not say how many blocks it cost, so no depth bound applies to them.


@dataclass
class PhaseTimes:
    """Seconds per repeat of one workload over all its batches: the prompt pass and the whole generation."""

    prefill: list[float]
    total: list[float]
    peak_cuda_bytes: int | None

    @property
    def decode(self) -> list[float]:
        return [total - prefill for prefill, total in zip(self.prefill, self.total)]


@dataclass(frozen=True)
class Generated:
    """What one repeat of a workload produced."""

    tokens: int  # new tokens, all sequences
    sequences: int
    batches: int
    kv_cache_bytes: int | None  # the largest engine KV cache of one batch; None outside the engine

    @property
    def decode_tokens(self) -> int:
        return self.tokens - self.sequences  # every sequence's first token comes from the prompt pass

    @property
    def decode_steps(self) -> float:
        # Batches run one after another, the sequences of a batch side by side.
        return self.batches * self.decode_tokens / self.sequences

    @classmethod
    def of(cls, outputs: list) -> Generated:
        rows = generated_rows(outputs)
        engine_caches = [o.kv_cache_bytes for o in outputs if isinstance(o, GenerationOutput)]
        return cls(sum(len(row) for row in rows), len(rows), len(outputs), max(engine_caches, default=None))


@dataclass
class Schedule:
    """Per workload its phase times and the outputs of its last whole generation; the order per repeat."""

    times: dict[str, PhaseTimes]
    outputs: dict[str, list]
    orders: list[list[str]]


def time_schedule(
    workloads: dict[str, Workload], new_tokens: int, device: torch.device, warmup: int, repeats: int, seed: int
) -> Schedule:
    """Every workload's prompt pass and whole generation, all interleaved in a seeded random order per repeat."""
    require(
        new_tokens > PREFILL_TOKENS,
        f"new_tokens={new_tokens} leaves nothing to decode after the prompt pass; allowed: >= {PREFILL_TOKENS + 1}",
    )
    phases = {}
    for name, workload in workloads.items():
        phases[f"{name}/prefill"] = lambda w=workload: w(PREFILL_TOKENS)
        phases[f"{name}/total"] = lambda w=workload: w(new_tokens)
    runs = interleaved_runs(phases, device, warmup, repeats, seed)
    times = {
        name: PhaseTimes(runs.seconds[f"{name}/prefill"], runs.seconds[f"{name}/total"], runs.peak_cuda_bytes[f"{name}/total"])
        for name in workloads
    }
    return Schedule(times, {name: runs.last_result[f"{name}/total"] for name in workloads}, runs.orders)


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def _median_and_spread(prefix: str, name: str, values: list[float]) -> dict:
    return {_key(prefix, name): statistics.median(values), _key(prefix, f"{name}_spread"): spread(values)}


def workload_fields(prefix: str, times: PhaseTimes, generated: Generated) -> dict:
    """Speed and memory of one workload, every key starting with ``prefix``."""
    return {
        **_median_and_spread(prefix, "tokens_per_s", [generated.tokens / t for t in times.total]),
        **_median_and_spread(prefix, "prefill_seconds", times.prefill),
        **_median_and_spread(prefix, "decode_tokens_per_s", [generated.decode_tokens / d for d in times.decode]),
        _key(prefix, "decode_ms_per_token"): statistics.median(1000 * d / generated.decode_steps for d in times.decode),
        _key(prefix, "repeat_seconds"): {"prefill": times.prefill, "total": times.total},
        _key(prefix, "decode_tokens"): generated.decode_tokens,
        _key(prefix, "peak_cuda_allocated_mib"): None if times.peak_cuda_bytes is None else times.peak_cuda_bytes / MIB,
        _key(prefix, "engine_kv_cache_bytes"): generated.kv_cache_bytes,
    }


def speedup_fields(name: str, baseline: PhaseTimes, candidate: PhaseTimes, seed: int, decode_name: str) -> dict:
    """Paired ratios baseline / candidate of the whole generation (``name``) and of decoding alone."""
    return {
        **ratio_fields(name, baseline.total, candidate.total, seed),
        **ratio_fields(decode_name, baseline.decode, candidate.decode, seed),
    }


def schedule_fields(schedule: Schedule, seed: int) -> dict:
    return {
        "reference": REFERENCE,
        "seed": seed,
        "repeat_orders": schedule.orders,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "ci_method": CI_METHOD,
    }


RESERVED = ("transformers", "full")  # the two references every schedule times


@dataclass
class Comparison:
    """One schedule of transformers greedy, the engine's full path and any number of candidates."""

    shared: dict  # engine_full_speedup (+ decode, CIs), transformers_* and full_* speed fields, schedule fields
    candidates: dict[str, dict]  # per candidate: speedup / decode_speedup / speedup_vs_engine_full (+ CIs), speed
    outputs: dict[str, list]  # every workload's outputs of its last whole generation


def compare_many(
    transformers: Workload,
    full: Workload,
    candidates: dict[str, Workload],
    new_tokens: int,
    device: torch.device,
    warmup: int,
    repeats: int,
    seed: int,
) -> Comparison:
    """Every candidate against transformers greedy (``speedup``) and the engine's full path
    (``speedup_vs_engine_full``), each with its decode-only twin and 95% CI, all from one schedule, so every
    ratio pairs repeats that ran side by side under the same machine load."""
    clash = sorted(set(candidates) & set(RESERVED))
    require(not clash, f"candidate names {clash} are taken by the references; allowed: any other name")
    workloads = {"transformers": transformers, "full": full, **candidates}
    schedule = time_schedule(workloads, new_tokens, device, warmup, repeats, seed)
    hf, engine = schedule.times["transformers"], schedule.times["full"]
    shared = {
        **speedup_fields("engine_full_speedup", hf, engine, seed, "engine_full_decode_speedup"),
        **workload_fields("transformers", hf, Generated.of(schedule.outputs["transformers"])),
        **workload_fields("full", engine, Generated.of(schedule.outputs["full"])),
        **schedule_fields(schedule, seed),
    }
    per_candidate = {}
    for name in candidates:
        times = schedule.times[name]
        per_candidate[name] = {
            **speedup_fields("speedup", hf, times, seed, "decode_speedup"),
            # Same code, only the depth differs: the ratio the depth bound applies to.
            **speedup_fields("speedup_vs_engine_full", engine, times, seed, "decode_speedup_vs_engine_full"),
            **workload_fields("", times, Generated.of(schedule.outputs[name])),
        }
    return Comparison(shared, per_candidate, schedule.outputs)


def compare_with_reference(
    transformers: Workload,
    full: Workload,
    candidate: Workload,
    new_tokens: int,
    device: torch.device,
    warmup: int,
    repeats: int,
    seed: int,
    candidate_prefix: str = "early_exit",
    extra: dict[str, Workload] | None = None,
) -> tuple[dict, dict[str, list], dict[str, dict]]:
    """One candidate (and optionally ``extra`` workloads, e.g. baselines) in one schedule: the candidate's
    ratios unprefixed, its speed fields as ``<candidate_prefix>_*``, the references' fields; their outputs
    (the candidate's under ``candidate_prefix``); and each extra workload's own fields."""
    extra = dict(extra or {})
    require("candidate" not in extra, "an extra workload may not be called 'candidate'")
    comparison = compare_many(transformers, full, {"candidate": candidate, **extra}, new_tokens, device, warmup, repeats, seed)
    mine = comparison.candidates.pop("candidate")
    speed = {k: v for k, v in mine.items() if "speedup" not in k}
    fields = {
        **{k: v for k, v in mine.items() if "speedup" in k},
        **comparison.shared,
        **{_key(candidate_prefix, k): v for k, v in speed.items()},
    }
    outputs = dict(comparison.outputs)
    outputs[candidate_prefix] = outputs.pop("candidate")
    return fields, outputs, comparison.candidates


def reference_matches(outputs: dict[str, list], candidate_prefix: str = "early_exit") -> dict:
    """Token match of the candidate and of the engine's full path with transformers greedy, and of the candidate
    with the engine's full path. Exact in float32 for lossless strategies; in bfloat16 a measured number."""
    reference, full = generated_rows(outputs["transformers"]), generated_rows(outputs["full"])
    candidate = generated_rows(outputs[candidate_prefix])
    fields = {}
    for prefix, suffix, ref, rows in (
        ("", "reference", reference, candidate),
        ("engine_full_", "reference", reference, full),
        ("", "full", full, candidate),
    ):
        exact, same = match_with_reference(ref, rows)
        fields[f"{prefix}sequence_exact_match_with_{suffix}"], fields[f"{prefix}token_match_with_{suffix}"] = exact, same
    return fields


def measure_generation(backbone, heads, policy, prompts: list[torch.Tensor], cfg: TimingConfig, costs) -> dict:
    lm, device = backbone.layered, backbone.device
    batches = prompt_batches([p.to(device) for p in prompts], cfg.batch_size)
    baselines = baseline_workloads(backbone, heads, batches, cfg)
    workloads = {
        "transformers": transformers_greedy(backbone.model, backbone.tokenizer.pad_token_id, batches),
        "full": lambda n: generate_batches(lm, batches, n),
        "early_exit": lambda n: generate_batches(
            lm, batches, n, heads=heads, policy=policy, strategy=cfg.strategy, max_draft=cfg.max_draft
        ),
    }
    with torch_threads(cfg.threads) as threads:
        fields, outputs, baseline_fields = compare_with_reference(
            *workloads.values(),
            cfg.max_new_tokens,
            device,
            cfg.warmup,
            cfg.repeats,
            cfg.seed,
            extra={name: workload for name, (workload, _) in baselines.items()},
        )
        # After the schedule, so the hooks never touch a timed run.
        breakdown = time_breakdowns(workloads, lm, heads, device, cfg.max_new_tokens, cfg.breakdown_repeats)
    exits = decoded_exit_indices(outputs["early_exit"])
    return {
        **fields,
        **reference_matches(outputs),
        **flag_fields(fields, bound_for(cfg.strategy, costs, exits)),
        "strategy": cfg.strategy,
        # Speculative strategies (dssd): drafts, acceptance (overall and per draft position), tokens per full pass.
        "speculation": speculation_fields(outputs["early_exit"]) or None,
        "device": str(device),
        "dtype": str(backbone.model.dtype).removeprefix("torch."),
        "prompts": cfg.prompts,
        "num_prompts": len(prompts),
        "prompt_tokens": max(int(p.shape[-1]) for p in prompts),
        "new_tokens_per_prompt": cfg.max_new_tokens,
        "batch_size": cfg.batch_size,
        "warmup": cfg.warmup,
        "repeats": cfg.repeats,
        "threads": threads,
        "generated_exit_fraction_early": sum(1 for i in exits if i < len(heads.exit_layers)) / max(1, len(exits)),
        "exit_sample": {
            "prompt": backbone.tokenizer.decode(prompts[0].reshape(-1).tolist()),
            "tokens": exit_sample(backbone.tokenizer, outputs["early_exit"][0], heads.exit_layers),
        },
        # Process-wide and monotone: the peak of everything this process did so far, not of one workload.
        "process_peak_rss_mib": process_peak_rss_mib(),
        "load_average_1min": load_average_1min(),
        "cpu_model": cpu_model(),
        "baselines": [
            baseline_result(name, layer, cfg, baseline_fields[name], outputs, costs, fields["engine_full_speedup_ci95"])
            for name, (_, layer) in baselines.items()
        ],
        "breakdown": breakdown,
    }
