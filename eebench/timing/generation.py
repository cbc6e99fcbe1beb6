"""Measure greedy generation speed: full model vs early exit, same prompts, same process, interleaved."""
from __future__ import annotations

import os

import torch

from eebench.config import TimingConfig
from eebench.engine.generate import generate
from eebench.timing.timer import paired_runs, spread


def timing_prompts(heldout: torch.Tensor, cfg: TimingConfig) -> list[torch.Tensor]:
    rows = heldout[: cfg.num_prompts, : cfg.prompt_tokens]
    return [row[None] for row in rows]


def exit_sample(tokenizer, output, exit_layers: list[int]) -> list[list]:
    """[token text, exit layer or "final"] for one generated sequence, for the per-token exit view."""
    names = [str(layer) for layer in exit_layers] + ["final"]
    tokens = output.tokens[0].tolist()
    return [[tokenizer.decode([t]), names[min(i, len(exit_layers))]] for t, i in zip(tokens, output.exit_index)]


def measure_generation(backbone, heads, policy, prompts: list[torch.Tensor], cfg: TimingConfig) -> dict:
    lm, device = backbone.layered, backbone.device
    prompts = [p.to(device) for p in prompts]
    outputs: dict[str, list] = {}

    def run(name: str, **kwargs):
        # No EOS stop: both runs produce exactly max_new_tokens per prompt, so token counts match.
        outputs[name] = [generate(lm, p, cfg.max_new_tokens, **kwargs) for p in prompts]

    full_times, ee_times = paired_runs(
        lambda: run("full"), lambda: run("early_exit", heads=heads, policy=policy, strategy=cfg.strategy),
        device, cfg.warmup, cfg.repeats,
    )
    new_tokens = sum(o.tokens.shape[1] for o in outputs["full"])
    full_tps = [new_tokens / t for t in full_times]
    ee_tps = [new_tokens / t for t in ee_times]
    ratios = [f / e for f, e in zip(full_times, ee_times)]
    exits = [i for o in outputs["early_exit"] for i in o.exit_index[1:]]  # the first token comes from prefill
    matches = sum(int(torch.equal(a.tokens, b.tokens)) for a, b in zip(outputs["full"], outputs["early_exit"]))
    same_tokens = sum(int((a.tokens == b.tokens).sum()) for a, b in zip(outputs["full"], outputs["early_exit"]))
    return {
        "full_tokens_per_s": spread(full_tps)["median"],
        "early_exit_tokens_per_s": spread(ee_tps)["median"],
        "speedup": spread(ratios)["median"],
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "full_tokens_per_s_spread": spread(full_tps),
        "early_exit_tokens_per_s_spread": spread(ee_tps),
        "strategy": cfg.strategy,
        "device": str(device),
        "prompts": len(prompts),
        "prompt_tokens": int(prompts[0].shape[1]),
        "new_tokens_per_prompt": cfg.max_new_tokens,
        "warmup": cfg.warmup,
        "repeats": cfg.repeats,
        "generated_exit_fraction_early": sum(1 for i in exits if i < len(heads.exit_layers)) / max(1, len(exits)),
        "sequence_exact_match_with_full": matches / len(prompts),
        "token_match_with_full": same_tokens / max(1, new_tokens),
        "exit_sample": {"prompt": backbone.tokenizer.decode(prompts[0][0].tolist()),
                        "tokens": exit_sample(backbone.tokenizer, outputs["early_exit"][0], heads.exit_layers)},
        "torch_threads": torch.get_num_threads(),
        # Other processes competing for the CPU distort timings; the load average says whether they did.
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
