"""Measure greedy generation speed: full model vs early exit, same prompts, same process, interleaved.

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
from typing import Callable

import torch

from eebench.config import TimingConfig
from eebench.engine.generate import GenerationOutput, generate
from eebench.errors import require
from eebench.timing.timer import MIB, interleaved_runs, load_average_1min, process_peak_rss_mib, spread

PREFILL_TOKENS = 1  # a run asked for one token does the prompt pass and nothing else

Workload = Callable[[int], list]  # new tokens per sequence -> outputs, one per batch


def timing_prompts(heldout: torch.Tensor, cfg: TimingConfig) -> list[torch.Tensor]:
    rows = heldout[: cfg.num_prompts, : cfg.prompt_tokens]
    return [row[None] for row in rows]


def prompt_batches(prompts: list[torch.Tensor], batch_size: int) -> list[list[torch.Tensor]]:
    return [prompts[start : start + batch_size] for start in range(0, len(prompts), batch_size)]


def generate_batches(lm, batches: list[list[torch.Tensor]], new_tokens: int, **kwargs) -> list[GenerationOutput]:
    # No EOS stop: every run produces exactly new_tokens per prompt, so token counts match across runs.
    return [generate(lm, batch, new_tokens, **kwargs) for batch in batches]


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
    def of(cls, outputs: list) -> "Generated":
        rows = generated_rows(outputs)
        engine_caches = [o.kv_cache_bytes for o in outputs if isinstance(o, GenerationOutput)]
        return cls(sum(len(row) for row in rows), len(rows), len(outputs), max(engine_caches, default=None))


def time_prefill_and_total(workloads: dict[str, Workload], new_tokens: int, device: torch.device,
                           warmup: int, repeats: int) -> tuple[dict[str, PhaseTimes], dict[str, list]]:
    """Per workload its phase times, and the outputs of its last whole generation."""
    phases = {}
    for name, workload in workloads.items():
        phases[f"{name}/prefill"] = lambda w=workload: w(PREFILL_TOKENS)
        phases[f"{name}/total"] = lambda w=workload: w(new_tokens)
    runs = interleaved_runs(phases, device, warmup, repeats)
    times = {name: PhaseTimes(runs.seconds[f"{name}/prefill"], runs.seconds[f"{name}/total"],
                              runs.peak_cuda_bytes[f"{name}/total"]) for name in workloads}
    return times, {name: runs.last_result[f"{name}/total"] for name in workloads}


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


def _ratio_fields(name: str, baseline: list[float], candidate: list[float]) -> dict:
    ratios = [b / c for b, c in zip(baseline, candidate)]
    return {name: statistics.median(ratios), f"{name}_min": min(ratios), f"{name}_max": max(ratios)}


def compare_generation(full: Workload, candidate: Workload, new_tokens: int, device: torch.device, warmup: int,
                       repeats: int, candidate_prefix: str = "early_exit") -> tuple[dict, dict[str, list]]:
    """Speed fields of both workloads (``full_*``, ``<candidate_prefix>_*``) and the paired speedups
    of the candidate over the full model; plus each workload's generated outputs."""
    require(new_tokens > PREFILL_TOKENS,
            f"new_tokens={new_tokens} leaves nothing to decode after the prompt pass; allowed: >= {PREFILL_TOKENS + 1}")
    times, outputs = time_prefill_and_total({"full": full, "candidate": candidate}, new_tokens, device, warmup, repeats)
    fields = {
        **_ratio_fields("speedup", times["full"].total, times["candidate"].total),
        # Early exit only changes decoding (the prompt pass runs at full depth), so this is its own effect.
        **_ratio_fields("decode_speedup", times["full"].decode, times["candidate"].decode),
        **workload_fields("full", times["full"], Generated.of(outputs["full"])),
        **workload_fields(candidate_prefix, times["candidate"], Generated.of(outputs["candidate"])),
    }
    return fields, {"full": outputs["full"], candidate_prefix: outputs["candidate"]}


def measure_generation(backbone, heads, policy, prompts: list[torch.Tensor], cfg: TimingConfig) -> dict:
    lm, device = backbone.layered, backbone.device
    batches = prompt_batches([p.to(device) for p in prompts], cfg.batch_size)
    fields, outputs = compare_generation(
        lambda n: generate_batches(lm, batches, n),
        lambda n: generate_batches(lm, batches, n, heads=heads, policy=policy, strategy=cfg.strategy),
        cfg.max_new_tokens, device, cfg.warmup, cfg.repeats,
    )
    exact, same = match_with_reference(generated_rows(outputs["full"]), generated_rows(outputs["early_exit"]))
    exits = decoded_exit_indices(outputs["early_exit"])
    return {
        **fields,
        "strategy": cfg.strategy,
        "device": str(device),
        "prompts": len(prompts),
        "prompt_tokens": int(prompts[0].shape[-1]),
        "new_tokens_per_prompt": cfg.max_new_tokens,
        "batch_size": cfg.batch_size,
        "warmup": cfg.warmup,
        "repeats": cfg.repeats,
        "generated_exit_fraction_early": sum(1 for i in exits if i < len(heads.exit_layers)) / max(1, len(exits)),
        "sequence_exact_match_with_full": exact,
        "token_match_with_full": same,
        "exit_sample": {"prompt": backbone.tokenizer.decode(prompts[0].reshape(-1).tolist()),
                        "tokens": exit_sample(backbone.tokenizer, outputs["early_exit"][0], heads.exit_layers)},
        # Process-wide and monotone: the peak of everything this process did so far, not of one workload.
        "process_peak_rss_mib": process_peak_rss_mib(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": load_average_1min(),
    }
