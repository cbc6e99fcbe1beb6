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

import copy
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from eebench.config import TimingConfig
from eebench.engine.generate import GenerationOutput, generate
from eebench.engine.strategies import speculative_strategies
from eebench.errors import require
from eebench.timing.statistics import BOOTSTRAP_RESAMPLES, CI_METHOD, depth_bound, depth_bound_flags, ratio_fields
from eebench.timing.timer import MIB, cpu_model, interleaved_runs, load_average_1min, process_peak_rss_mib, spread, torch_threads

PREFILL_TOKENS = 1  # a run asked for one token does the prompt pass and nothing else

REFERENCE = "transformers_greedy"
# Strategies whose tokens are drafted and then verified by the full model several at a time: a token's
# exit index does not say how many blocks it cost, so no depth bound applies to them.
SPECULATIVE = speculative_strategies()

Workload = Callable[[int], list]  # new tokens per sequence -> outputs, one per batch


def prompt_batches(prompts: list[torch.Tensor], batch_size: int) -> list[list[torch.Tensor]]:
    return [prompts[start : start + batch_size] for start in range(0, len(prompts), batch_size)]


def generate_batches(lm, batches: list[list[torch.Tensor]], new_tokens: int, **kwargs) -> list[GenerationOutput]:
    # No EOS stop: every run produces exactly new_tokens per prompt, so token counts match across runs.
    return [generate(lm, batch, new_tokens, **kwargs) for batch in batches]


def transformers_greedy(model, pad_token_id: int, batches: list[list[torch.Tensor]], **kwargs) -> Workload:
    """transformers' own greedy ``generate`` over the batches: the user's alternative to eebench.
    Like the engine it never stops at EOS, so both produce the same number of tokens."""
    config = copy.deepcopy(model.generation_config)
    config.eos_token_id = None  # not min_new_tokens: that would mask EOS out of the argmax, which the engine never does
    config.do_sample, config.pad_token_id = False, pad_token_id

    def run(new_tokens: int) -> list[torch.Tensor]:
        return [_transformers_batch(model, batch, new_tokens, config, **kwargs) for batch in batches]

    return run


def _transformers_batch(model, batch: list[torch.Tensor], new_tokens: int, config, **kwargs) -> torch.Tensor:
    """[B, new_tokens]: ragged prompts are padded on the left, as transformers' decoder-only generate expects."""
    rows = [p.reshape(-1) for p in batch]
    width = max(len(r) for r in rows)
    ids = torch.stack([torch.nn.functional.pad(r, (width - len(r), 0), value=config.pad_token_id) for r in rows])
    mask = torch.stack([torch.nn.functional.pad(torch.ones_like(r), (width - len(r), 0)) for r in rows])
    config.max_new_tokens = new_tokens  # on the config: transformers deprecates passing both
    out = model.generate(ids, attention_mask=mask, generation_config=config, **kwargs)
    return out[:, width:]


def generated_rows(outputs: list) -> list[torch.Tensor]:
    """Each sequence's new tokens, in prompt order, from engine outputs or [B, n] token tensors."""
    rows = []
    for output in outputs:
        if isinstance(output, GenerationOutput):
            rows += [tokens[:length] for tokens, length in zip(output.tokens, output.lengths)]
        else:
            rows += list(output)
    return rows


def match_with_reference(reference: list[torch.Tensor], rows: list[torch.Tensor]) -> tuple[float, float]:
    """(share of sequences equal to the reference token for token, share of all tokens equal to it)."""
    exact = sum(torch.equal(ref, row) for ref, row in zip(reference, rows)) / len(rows)
    same = sum(int((ref == row).sum()) for ref, row in zip(reference, rows)) / max(1, sum(map(len, reference)))
    return exact, same


def decoded_exit_indices(outputs: list[GenerationOutput]) -> list[int]:
    """The exit index of every new token but each sequence's first, which the full-depth prompt pass made."""
    return [index for output in outputs for row in output.exit_indices for index in row[1:]]


def exit_sample(tokenizer, output: GenerationOutput, exit_layers: list[int]) -> list[list]:
    """[token text, exit layer or "final"] for the first sequence of an output, for the per-token exit view."""
    names = [str(layer) for layer in exit_layers] + ["final"]
    tokens = output.tokens[0, : output.lengths[0]].tolist()
    return [[tokenizer.decode([t]), names[min(i, len(exit_layers))]] for t, i in zip(tokens, output.exit_indices[0])]


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
) -> tuple[dict, dict[str, list]]:
    """transformers greedy, the engine's full path and the candidate in one schedule: speedups of the candidate
    over transformers (``speedup``) and over the engine's full path (``speedup_vs_engine_full``), the engine's
    full path over transformers (``engine_full_speedup``), each with its decode-only twin and 95% CI; speed
    fields of every workload (``transformers_*``, ``full_*``, ``<candidate_prefix>_*``); and their outputs."""
    schedule = time_schedule(
        {"transformers": transformers, "full": full, "candidate": candidate}, new_tokens, device, warmup, repeats, seed
    )
    hf, engine, cand = (schedule.times[name] for name in ("transformers", "full", "candidate"))
    outputs = {
        "transformers": schedule.outputs["transformers"],
        "full": schedule.outputs["full"],
        candidate_prefix: schedule.outputs["candidate"],
    }
    fields = {
        **speedup_fields("speedup", hf, cand, seed, "decode_speedup"),
        **speedup_fields("engine_full_speedup", hf, engine, seed, "engine_full_decode_speedup"),
        # Same code, only the depth differs: the ratio the depth bound applies to.
        **speedup_fields("speedup_vs_engine_full", engine, cand, seed, "decode_speedup_vs_engine_full"),
        **{
            k: v
            for name, out in outputs.items()
            for k, v in workload_fields(
                name, schedule.times["candidate" if name == candidate_prefix else name], Generated.of(out)
            ).items()
        },
        **schedule_fields(schedule, seed),
    }
    return fields, outputs


def noise_floor(
    transformers: Workload, full: Workload, new_tokens: int, device: torch.device, warmup: int, repeats: int, seed: int
) -> dict:
    """A/A: transformers greedy timed twice as two workloads of one schedule (``aa_speedup``: how far two identical
    workloads drift apart here, the smallest effect this machine resolves), with the engine's full path in the same
    schedule (``engine_full_speedup``: transformers time / engine full-depth time)."""
    schedule = time_schedule(
        {"transformers": transformers, "transformers_again": transformers, "full": full},
        new_tokens,
        device,
        warmup,
        repeats,
        seed,
    )
    hf, again, engine = (schedule.times[name] for name in ("transformers", "transformers_again", "full"))
    return {
        **speedup_fields("aa_speedup", hf, again, seed, "aa_decode_speedup"),
        **speedup_fields("engine_full_speedup", hf, engine, seed, "engine_full_decode_speedup"),
        **workload_fields("transformers", hf, Generated.of(schedule.outputs["transformers"])),
        **workload_fields("full", engine, Generated.of(schedule.outputs["full"])),
        **schedule_fields(schedule, seed),
    }


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


def bound_for(strategy: str, costs, exits: list[int]) -> float | None:
    return None if strategy in SPECULATIVE else depth_bound(costs, exits, every_block=strategy == "full")


def flag_fields(fields: dict, bound: float | None) -> dict:
    flags = depth_bound_flags(fields, bound)
    return {"depth_bound": bound, "flags": flags, "measurement_error": bool(flags)}


def measure_generation(backbone, heads, policy, prompts: list[torch.Tensor], cfg: TimingConfig, costs) -> dict:
    lm, device = backbone.layered, backbone.device
    batches = prompt_batches([p.to(device) for p in prompts], cfg.batch_size)
    with torch_threads(cfg.threads) as threads:
        fields, outputs = compare_with_reference(
            transformers_greedy(backbone.model, backbone.tokenizer.pad_token_id, batches),
            lambda n: generate_batches(lm, batches, n),
            lambda n: generate_batches(lm, batches, n, heads=heads, policy=policy, strategy=cfg.strategy),
            cfg.max_new_tokens,
            device,
            cfg.warmup,
            cfg.repeats,
            cfg.seed,
        )
    exits = decoded_exit_indices(outputs["early_exit"])
    return {
        **fields,
        **reference_matches(outputs),
        **flag_fields(fields, bound_for(cfg.strategy, costs, exits)),
        "strategy": cfg.strategy,
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
    }
