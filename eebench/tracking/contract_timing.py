"""The ``timing`` section of the results contract (``contract.py``): generation timed against transformers' greedy
decoding, as ``timing/generation.py`` measures it (its paired ratios, workloads, baselines, speculation and the
per-part breakdown of a decoded token's time).

Fields are added as in ``contract.py``: with a comment saying what each means, from which ``docs/results.md`` is
generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eebench.tracking.schema import flattened


@dataclass
class Ratio:
    """A paired speed ratio, baseline time / candidate time, over the repeats of one schedule; stored flat as
    ``<name>`` (the value) and ``<name>_ci95`` / ``_min`` / ``_max`` / ``_median_of_repeats`` (eebench/timing/statistics.py)."""

    value: float  # ratio of summed repeat times (above 1: the candidate is faster)
    ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    min: float  # smallest single-repeat ratio
    max: float  # largest single-repeat ratio
    median_of_repeats: float  # median of the per-repeat ratios


def ratio_field() -> Any:
    return flattened(bare="value")


@dataclass
class WorkloadTiming:
    """One timed workload (the full model or early exit); stored flat as ``<workload>_<field>`` in ``timing``."""

    tokens_per_s: float  # new tokens per second, end to end (prompt pass included)
    tokens_per_s_spread: dict[str, float]  # {median, min, max, n} over repeats
    # the prompt pass and first token, timed as the same generation asked for one token
    prefill_seconds: float
    prefill_seconds_spread: dict[str, float]  # {median, min, max, n} over repeats
    # decoded tokens per second: the whole generation minus the prompt pass of the same repeat
    decode_tokens_per_s: float
    decode_tokens_per_s_spread: dict[str, float]  # {median, min, max, n} over repeats
    decode_ms_per_token: float  # time between two tokens of one sequence, in ms
    repeat_seconds: dict[str, list[float]]  # {prefill: [...], total: [...]}
    decode_tokens: int  # tokens decoded after the prompt pass, all sequences (each sequence's first comes from it)
    # on CUDA, the peak of torch.cuda.max_memory_allocated over the timed generations, weights included; null on CPU
    peak_cuda_allocated_mib: float | None
    engine_kv_cache_bytes: int | None  # what the engine's KV cache of one batch allocated; null outside the engine


@dataclass
class ExitSample:
    """One generated text with each token's exit, for the report's per-token view."""

    prompt: str  # the prompt it continues
    tokens: list[list[str]]  # [token text, exit layer or "final"]


@dataclass
class BaselineTiming:
    """A fixed-block baseline (``timing.baselines``) timed in the same schedule as the point's strategy."""

    name: str  # static | layerskip | assistant_early_exit
    exit_layer: int  # 0-based block it exits (static) or drafts (layerskip, assistant_early_exit) at
    draft_length: int | None  # tokens drafted per verification; None for static
    lossless: bool  # verified by the full model: its tokens equal full-depth greedy decoding (exactly in float32)
    speedup: float  # transformers greedy time / this baseline's time
    speedup_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    decode_speedup: float  # the same for decode only
    decode_speedup_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    speedup_vs_engine_full: float  # the engine's full path / this baseline
    speedup_vs_engine_full_ci95: list[float]  # paired bootstrap 95% CI over repeats, [lo, hi]
    tokens_per_s: float  # new tokens per second, end to end
    token_match_with_reference: float  # vs transformers greedy
    sequence_exact_match_with_reference: float  # share of sequences equal to transformers greedy's, token for token
    acceptance: float | None = None  # drafted tokens accepted by verification (engine layerskip only)
    depth_bound: float | None = None  # static only: the most its exit pattern could give
    flags: list[Any] = field(default_factory=list)  # measurement errors (static above its depth bound)


@dataclass
class SpeculationResult:
    """What a speculative strategy (dssd) drafted and the full model accepted, in one run of its timed workload."""

    drafted: int  # draft tokens proposed by the exits
    accepted: int  # of those, equal to the full model's token (and every draft before them)
    acceptance_rate: float  # accepted / drafted
    mean_accepted_length: float  # accepted drafts per verification pass that had drafts
    tokens_per_full_pass: float  # new tokens per full-depth pass (accepted drafts + the full model's own token)
    full_passes: int  # full-depth passes after the prompt pass
    verifications: int  # full-depth passes that checked at least one draft
    acceptance_by_position: list[float]  # share accepted at draft position 1, 2, ... (among drafts made there)


@dataclass
class BreakdownPart:
    """One part of a decoded token's time (eebench/timing/breakdown.py)."""

    part: str  # blocks | exit_heads | gates | final_readout (final norm + lm_head) | other (everything else)
    ms_per_token: float  # measured wall time inside the part's modules per decoded token (other: the rest)
    calls_per_token: float | None  # module calls per decoded token (final_readout: lm_head calls); null for other
    # the cost model's prediction: calls per token x the part's matrix products alone, timed on this machine
    weight_read_ms_per_token: float


@dataclass
class TimeBreakdown:
    """Where one workload's decode time goes, from profiled runs after the timed schedule (forward hooks)."""

    workload: str  # transformers | full | early_exit
    ms_per_token: float  # profiled decode time per token of one sequence (hooks included: a little above the timed one)
    weight_read_ms_per_token: float  # the parts' weight reads alone: the cost model's time per token on this machine
    parts: list[BreakdownPart]  # blocks, exit_heads, gates, final_readout (those called), then other
    exited_step_share: float  # share of decode time in steps that left at an exit (dssd: drafting; the rest verifies)
    exited_steps_per_token: float  # decode steps per token that left at an exit (dssd: draft steps)
    full_steps_per_token: float  # decode steps per token that reached lm_head (dssd: verification passes)
    profiled_repeats: int  # profiled runs of the workload, summed


@dataclass
class TimingResult:
    """Greedy generation timed in one process: transformers' ``generate`` (the reference), the engine's full-depth
    path and the early-exit strategy, same prompts, in a seeded random order per repeat.

    To add a number: declare it here (optional, with a default, unless every writer sets it), set it in
    ``timing/generation.py:measure_generation``, say what it means in a comment (docs/results.md is generated from
    it). A new workload is one more ``flattened()`` field of type ``WorkloadTiming | None``."""

    speedup: Ratio = ratio_field()  # transformers greedy time / early-exit time
    decode_speedup: Ratio = ratio_field()  # the same for decode only (whole generation minus the prompt pass)
    # transformers greedy / the engine's own full-depth path (below 1: the engine is slower)
    engine_full_speedup: Ratio = ratio_field()
    engine_full_decode_speedup: Ratio = ratio_field()  # the same for decode only
    speedup_vs_engine_full: Ratio = ratio_field()  # engine full path / early exit: the effect of depth alone
    decode_speedup_vs_engine_full: Ratio = ratio_field()  # the same for decode only
    # transformers' generate(do_sample=False) of the same backbone: the reference, what a user would run instead
    transformers: WorkloadTiming = flattened()
    full: WorkloadTiming = flattened()  # the engine's own full-depth path
    early_exit: WorkloadTiming = flattened()  # the early-exit strategy (timing.strategy) under the exit policy
    reference: str  # "transformers_greedy"
    seed: int  # seeds the workload order of every repeat and the bootstrap
    repeat_orders: list[list[str]]  # the order the workloads ran in, per repeat
    bootstrap_resamples: int  # resamples of the paired bootstrap behind every *_ci95
    ci_method: str  # how the CIs were computed
    # early exit vs transformers greedy: share of sequences equal token for token (a measured number in bfloat16)
    sequence_exact_match_with_reference: float
    token_match_with_reference: float  # early exit vs transformers greedy: share of all new tokens equal to it
    engine_full_sequence_exact_match_with_reference: float  # the engine's full path vs transformers greedy, per sequence
    engine_full_token_match_with_reference: float  # the engine's full path vs transformers greedy, per token
    sequence_exact_match_with_full: float  # early exit vs the engine's full path
    token_match_with_full: float  # early exit vs the engine's full path, per token
    depth_bound: float | None  # the most any speedup can be for the decoded exits; None for speculative strategies
    flags: list[Any]  # measurement errors (e.g. a CI above the depth bound); never findings
    measurement_error: bool  # some flag was raised: a CI lower bound above depth_bound is an error, not a finding
    strategy: str  # timing.strategy: the KV strategy or DSSD the early-exit workload ran
    device: str  # where it was timed (cpu, cuda)
    dtype: str  # the backbone's precision while timing
    prompts: str  # "heldout" or "tasks"
    num_prompts: int  # prompts timed per workload and repeat
    prompt_tokens: int  # tokens per prompt (tasks: each context's last prompt_tokens tokens)
    new_tokens_per_prompt: int  # tokens generated per prompt, none stopping at EOS
    batch_size: int  # prompts generated together; 1 times per-sequence latency
    warmup: int  # untimed runs of every workload before the repeats
    repeats: int  # paired repeats; each runs every workload once, in a fresh seeded random order
    threads: int  # torch intra-op threads while timing (timing.threads; default: physical cores)
    generated_exit_fraction_early: float  # decoded tokens (not the prompt pass's) leaving at a head
    exit_sample: ExitSample  # one generated text with each token's exit
    process_peak_rss_mib: float | None  # the whole process so far, not one workload
    load_average_1min: float | None  # the machine's 1-minute load average while timing
    cpu_model: str | None = None  # the CPU's model name
    # New fields go below, each with a default so files written before it still load.
    baselines: list[BaselineTiming] = field(default_factory=list)  # timing.baselines, same schedule and prompts
    speculation: SpeculationResult | None = None  # dssd: drafts and their acceptance; None for other strategies
    # per workload, where its decode time goes beside the cost model's weight reads (timing.breakdown_repeats > 0)
    breakdown: list[TimeBreakdown] = field(default_factory=list)
