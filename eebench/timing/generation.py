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

from eebench.errors import require
from eebench.timing.baselines import baseline_result, baseline_workloads
from eebench.timing.breakdown import time_breakdowns
from eebench.timing.config import TimingConfig
from eebench.timing.statistics import BOOTSTRAP_RESAMPLES, CI_METHOD, PairedRatios, bound_for, depth_bound_flags
from eebench.timing.timer import MIB, cpu_model, interleaved_runs, load_average_1min, process_peak_rss_mib, spread, torch_threads
from eebench.timing.workloads import (
    Generated,
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
from eebench.tracking.contract_timing import ExitSample, Ratio, SpeculationResult, TimingResult, WorkloadTiming
from eebench.tracking.schema import flattened_under, unbuild

PREFILL_TOKENS = 1  # a run asked for one token does the prompt pass and nothing else

REFERENCE = "transformers_greedy"


@dataclass
class PhaseTimes:
    """Seconds per repeat of one workload over all its batches: the prompt pass and the whole generation."""

    prefill: list[float]
    total: list[float]
    peak_cuda_bytes: int | None

    @property
    def decode(self) -> list[float]:
        return [total - prefill for prefill, total in zip(self.prefill, self.total)]


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


def _median_and_spread(values: list[float]) -> tuple[float, dict]:
    return statistics.median(values), spread(values)


def workload_timing(times: PhaseTimes, generated: Generated) -> WorkloadTiming:
    """Speed and memory of one workload over its repeats."""
    tokens_per_s, tokens_spread = _median_and_spread([generated.tokens / t for t in times.total])
    prefill, prefill_spread = _median_and_spread(times.prefill)
    decode_rate, decode_spread = _median_and_spread([generated.decode_tokens / d for d in times.decode])
    return WorkloadTiming(
        tokens_per_s=tokens_per_s,
        tokens_per_s_spread=tokens_spread,
        prefill_seconds=prefill,
        prefill_seconds_spread=prefill_spread,
        decode_tokens_per_s=decode_rate,
        decode_tokens_per_s_spread=decode_spread,
        decode_ms_per_token=statistics.median(1000 * d / generated.decode_steps for d in times.decode),
        repeat_seconds={"prefill": times.prefill, "total": times.total},
        decode_tokens=generated.decode_tokens,
        peak_cuda_allocated_mib=None if times.peak_cuda_bytes is None else times.peak_cuda_bytes / MIB,
        engine_kv_cache_bytes=generated.kv_cache_bytes,
    )


@dataclass
class CandidateTiming:
    """One candidate of a schedule: against transformers greedy, against the engine's full path, and its speed."""

    vs_transformers: PairedRatios
    vs_engine_full: PairedRatios
    speed: WorkloadTiming

    def flat(self) -> dict:
        """As results files and benchmark rows spell it: ``speedup``, ``speedup_ci95``, ..., ``tokens_per_s``, ..."""
        ratios = {
            "speedup": self.vs_transformers.whole,
            "decode_speedup": self.vs_transformers.decode,
            "speedup_vs_engine_full": self.vs_engine_full.whole,
            "decode_speedup_vs_engine_full": self.vs_engine_full.decode,
        }
        return {**flat_ratios(ratios), **unbuild(self.speed)}


def flat_ratios(ratios: dict[str, Ratio]) -> dict:
    """``{name: Ratio}`` as stored: ``name`` (the value), ``name_ci95``, ``name_min``, ..."""
    return {key: value for name, ratio in ratios.items() for key, value in flattened_under(name, ratio, "value").items()}


RESERVED = ("transformers", "full")  # the two references every schedule times
CANDIDATE = "candidate"


@dataclass
class Comparison:
    """One schedule of transformers greedy, the engine's full path and any number of candidates."""

    engine_full: PairedRatios  # transformers greedy / the engine's full path
    transformers: WorkloadTiming
    full: WorkloadTiming
    candidates: dict[str, CandidateTiming]
    outputs: dict[str, list]  # every workload's outputs of its last whole generation
    orders: list[list[str]]  # the workload order of every repeat
    seed: int

    def shared(self) -> dict:
        """The references' figures as results files and benchmark rows spell them."""
        return {
            **flat_ratios({"engine_full_speedup": self.engine_full.whole, "engine_full_decode_speedup": self.engine_full.decode}),
            **flattened_under("transformers", self.transformers),
            **flattened_under("full", self.full),
            "reference": REFERENCE,
            "seed": self.seed,
            "repeat_orders": self.orders,
            "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            "ci_method": CI_METHOD,
        }


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
    """Every candidate against transformers greedy and the engine's full path, each ratio with its decode-only twin
    and 95% CI, all from one schedule, so every ratio pairs repeats that ran side by side under the same load."""
    clash = sorted(set(candidates) & set(RESERVED))
    require(not clash, f"candidate names {clash} are taken by the references; allowed: any other name")
    workloads = {"transformers": transformers, "full": full, **candidates}
    schedule = time_schedule(workloads, new_tokens, device, warmup, repeats, seed)
    hf, engine = schedule.times["transformers"], schedule.times["full"]
    timed = {
        name: CandidateTiming(
            PairedRatios.of(hf, schedule.times[name], seed),
            # Same code, only the depth differs: the ratio the depth bound applies to.
            PairedRatios.of(engine, schedule.times[name], seed),
            workload_timing(schedule.times[name], Generated.of(schedule.outputs[name])),
        )
        for name in candidates
    }
    return Comparison(
        PairedRatios.of(hf, engine, seed),
        workload_timing(hf, Generated.of(schedule.outputs["transformers"])),
        workload_timing(engine, Generated.of(schedule.outputs["full"])),
        timed,
        schedule.outputs,
        schedule.orders,
        seed,
    )


@dataclass(frozen=True)
class TokenMatch:
    """Share of sequences equal token for token, and of all tokens equal, between two workloads' outputs."""

    sequences: float
    tokens: float

    @classmethod
    def of(cls, reference: list, rows: list) -> TokenMatch:
        return cls(*match_with_reference(generated_rows(reference), generated_rows(rows)))


def _draft_options(cfg: TimingConfig) -> dict:
    """The drafting rules of a speculative strategy (dssd); none for the others."""
    return {"max_draft": cfg.max_draft, "draft_exits": cfg.draft_exits} if cfg.strategy == "dssd" else {}


def measure_generation(backbone, heads, policy, prompts: list[torch.Tensor], cfg: TimingConfig, costs) -> TimingResult:
    lm, device = backbone.layered, backbone.device
    batches = prompt_batches([p.to(device) for p in prompts], cfg.batch_size)
    baselines = baseline_workloads(backbone, heads, batches, cfg)
    workloads = {
        "transformers": transformers_greedy(backbone.model, backbone.tokenizer.pad_token_id, batches),
        "full": lambda n: generate_batches(lm, batches, n),
        "early_exit": lambda n: generate_batches(
            lm, batches, n, heads=heads, policy=policy, strategy=cfg.strategy, **_draft_options(cfg)
        ),
    }
    early_exit = CANDIDATE  # the strategy's name in the schedule (repeat_orders)
    require(early_exit not in baselines, f"a baseline may not be called {early_exit!r}")
    with torch_threads(cfg.threads) as threads:
        comparison = compare_many(
            workloads["transformers"],
            workloads["full"],
            {early_exit: workloads["early_exit"], **{name: workload for name, (workload, _) in baselines.items()}},
            cfg.max_new_tokens,
            device,
            cfg.warmup,
            cfg.repeats,
            cfg.seed,
        )
        # After the schedule, so the hooks never touch a timed run.
        breakdown = time_breakdowns(workloads, lm, heads, device, cfg.max_new_tokens, cfg.breakdown_repeats)
    outputs, candidate = comparison.outputs, comparison.candidates[early_exit]
    exits = decoded_exit_indices(outputs[early_exit])
    bound = bound_for(cfg.strategy, costs, exits)
    flags = depth_bound_flags(candidate.vs_transformers.whole, candidate.vs_engine_full, comparison.engine_full.whole, bound)
    vs_reference = TokenMatch.of(outputs["transformers"], outputs[early_exit])
    engine_vs_reference = TokenMatch.of(outputs["transformers"], outputs["full"])
    vs_full = TokenMatch.of(outputs["full"], outputs[early_exit])
    speculation = speculation_fields(outputs[early_exit])
    return TimingResult(
        speedup=candidate.vs_transformers.whole,
        decode_speedup=candidate.vs_transformers.decode,
        engine_full_speedup=comparison.engine_full.whole,
        engine_full_decode_speedup=comparison.engine_full.decode,
        speedup_vs_engine_full=candidate.vs_engine_full.whole,
        decode_speedup_vs_engine_full=candidate.vs_engine_full.decode,
        transformers=comparison.transformers,
        full=comparison.full,
        early_exit=candidate.speed,
        reference=REFERENCE,
        seed=cfg.seed,
        repeat_orders=comparison.orders,
        bootstrap_resamples=BOOTSTRAP_RESAMPLES,
        ci_method=CI_METHOD,
        sequence_exact_match_with_reference=vs_reference.sequences,
        token_match_with_reference=vs_reference.tokens,
        engine_full_sequence_exact_match_with_reference=engine_vs_reference.sequences,
        engine_full_token_match_with_reference=engine_vs_reference.tokens,
        sequence_exact_match_with_full=vs_full.sequences,
        token_match_with_full=vs_full.tokens,
        depth_bound=bound,
        flags=flags,
        measurement_error=bool(flags),
        strategy=cfg.strategy,
        device=str(device),
        dtype=str(backbone.model.dtype).removeprefix("torch."),
        prompts=cfg.prompts,
        num_prompts=len(prompts),
        prompt_tokens=max(int(p.shape[-1]) for p in prompts),
        new_tokens_per_prompt=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        warmup=cfg.warmup,
        repeats=cfg.repeats,
        threads=threads,
        generated_exit_fraction_early=sum(1 for i in exits if i < len(heads.exit_layers)) / max(1, len(exits)),
        exit_sample=ExitSample(
            backbone.tokenizer.decode(prompts[0].reshape(-1).tolist()),
            exit_sample(backbone.tokenizer, outputs[early_exit][0], heads.exit_layers),
        ),
        # Process-wide and monotone: the peak of everything this process did so far, not of one workload.
        process_peak_rss_mib=process_peak_rss_mib(),
        load_average_1min=load_average_1min(),
        cpu_model=cpu_model(),
        baselines=[
            baseline_result(name, layer, cfg, comparison.candidates[name], outputs, costs, comparison.engine_full.whole)
            for name, (_, layer) in baselines.items()
        ],
        # Speculative strategies (dssd): drafts, acceptance (overall and per draft position), tokens per full pass.
        speculation=SpeculationResult(**speculation) if speculation else None,
        breakdown=breakdown,
    )
