"""The published comparison points as timed workloads: each exits at one fixed block, not by the exit policy.

- ``static``: every new token leaves at block ``exit_layer`` through its trained head (no confidence at all).
- ``layerskip``: self-speculation drafting ``draft_length`` tokens from block ``exit_layer`` through the model's own
  final norm and lm_head (LayerSkip's draft, here without its layer-dropout training), verified by the full model.
- ``assistant_early_exit``: transformers' own ``generate(assistant_early_exit=exit_layer + 1)``, the same idea
  inside transformers.

One builder serves the experiment's timing stage (``timing.baselines``) and benchmarks/engine_speed.py, so a
baseline in a sweep and in the benchmark is the same workload.
"""

from __future__ import annotations

from functools import partial

import torch

from eebench.engine.strategies import STRATEGIES, baseline_strategies
from eebench.errors import EEBenchError, require
from eebench.timing.config import TimingConfig
from eebench.timing.statistics import bound_for, depth_bound_flags
from eebench.timing.workloads import (
    Workload,
    decoded_exit_indices,
    generate_batches,
    generated_rows,
    match_with_reference,
    speculation_fields,
    transformers_greedy,
)
from eebench.tracking.contract_timing import BaselineTiming, Ratio

ENGINE_BASELINES = ("static", "layerskip")  # run by eebench's engine, on every family it supports


def baseline_exit_layer(requested: int | None, exit_layers: list[int], num_layers: int) -> int:
    """``requested`` (a 0-based block), or by default the deepest exit head's block: the baselines' most accurate
    choice among the blocks this sweep trained a head for (static needs a trained head there)."""
    layer = exit_layers[-1] if requested is None else requested
    require(
        0 <= layer < num_layers - 1,
        f"timing.baseline_exit_layer={layer} is outside the model; allowed: 0..{num_layers - 2} (0-based blocks below the last)",
    )
    return layer


def baseline_workload(name: str, backbone, heads, batches: list, exit_layer: int, draft_length: int) -> Workload:
    """The workload of baseline ``name`` over ``batches`` (a function of the number of new tokens)."""
    require(name in baseline_strategies(), f"baseline {name!r} is unknown; allowed: {', '.join(baseline_strategies())}")
    if name == "assistant_early_exit":
        return assistant_early_exit(backbone, batches, exit_layer, draft_length)
    if name == "static":
        require(
            exit_layer in heads.exit_layers,
            f"timing.baseline_exit_layer={exit_layer} has no trained head for the static baseline; allowed: {heads.exit_layers}",
        )
        return partial(generate_batches, backbone.layered, batches, heads=heads, strategy="static", exit_layer=exit_layer)
    return partial(
        generate_batches, backbone.layered, batches, strategy="layerskip", exit_layer=exit_layer, draft_length=draft_length
    )


def assistant_early_exit(backbone, batches: list, exit_layer: int, draft_length: int) -> Workload:
    """transformers' ``generate(assistant_early_exit=...)``. It shortens the model's config while drafting and does
    not restore it when it fails (it does fail on some families), so the config is restored here and a failure is
    one line naming the baseline instead of a broken model for every later workload."""
    workload = transformers_greedy(
        backbone.model,
        backbone.tokenizer.pad_token_id,
        batches,
        assistant_early_exit=exit_layer + 1,
        num_assistant_tokens=draft_length,
    )

    def run(new_tokens: int) -> list:
        config = backbone.model.config
        saved = dict(vars(config))
        try:
            return workload(new_tokens)
        except Exception as exc:  # transformers raises IndexError, AttributeError, ... from inside its drafting
            family = getattr(config, "model_type", "?")
            raise EEBenchError(
                f"timing.baselines=assistant_early_exit fails inside transformers on the {family} family "
                f"({type(exc).__name__}: {exc}); allowed for this backbone: {', '.join(ENGINE_BASELINES)}"
            ) from None
        finally:
            vars(config).update(saved)

    return run


def check_baselines(backbone, cfg: TimingConfig, exit_layers: list[int]) -> None:
    """Run each transformers-side baseline once on a few tokens, before heads are trained, so a baseline that
    cannot run on this backbone fails in seconds rather than after training and evaluation."""
    if not cfg.enabled or "assistant_early_exit" not in cfg.baselines:
        return
    layer = baseline_exit_layer(cfg.baseline_exit_layer, exit_layers, backbone.num_layers)
    prompt = torch.tensor([backbone.tokenizer.eos_token_id or 0] * 4, device=backbone.device)
    assistant_early_exit(backbone, [[prompt]], layer, cfg.baseline_draft_length)(3)


def baseline_workloads(backbone, heads, batches, cfg: TimingConfig) -> dict[str, tuple[Workload, int]]:
    """Per name in ``timing.baselines``: its workload and the block it exits or drafts at."""
    if not cfg.baselines:
        return {}
    layer = baseline_exit_layer(cfg.baseline_exit_layer, heads.exit_layers, backbone.num_layers)
    return {
        name: (baseline_workload(name, backbone, heads, batches, layer, cfg.baseline_draft_length), layer)
        for name in cfg.baselines
    }


def baseline_result(name: str, layer: int, cfg: TimingConfig, timed, outputs: dict, costs, engine_full: Ratio) -> BaselineTiming:
    """A baseline's row of ``timing.baselines`` from its ``CandidateTiming`` (generation.py): its ratios with CIs,
    speed, and token match with transformers."""
    strategy = STRATEGIES.get(name)
    exact, same = match_with_reference(generated_rows(outputs["transformers"]), generated_rows(outputs[name]))
    bound, flags = None, []
    if name == "static":
        bound = bound_for(name, costs, decoded_exit_indices(outputs[name]))
        flags = depth_bound_flags(timed.vs_transformers.whole, timed.vs_engine_full, engine_full, bound)
    return BaselineTiming(
        name=name,
        exit_layer=layer,
        draft_length=cfg.baseline_draft_length if strategy.speculative else None,
        lossless=strategy.lossless,
        speedup=timed.vs_transformers.whole.value,
        speedup_ci95=timed.vs_transformers.whole.ci95,
        decode_speedup=timed.vs_transformers.decode.value,
        decode_speedup_ci95=timed.vs_transformers.decode.ci95,
        speedup_vs_engine_full=timed.vs_engine_full.whole.value,
        speedup_vs_engine_full_ci95=timed.vs_engine_full.whole.ci95,
        tokens_per_s=timed.speed.tokens_per_s,
        token_match_with_reference=same,
        sequence_exact_match_with_reference=exact,
        acceptance=speculation_fields(outputs[name]).get("acceptance_rate"),
        depth_bound=bound,
        flags=flags,
    )
