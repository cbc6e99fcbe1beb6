"""Paired ratios of repeat times with a bootstrap CI, and the depth bound that a speedup cannot beat.

Estimator: the ratio of summed times over the repeats, i.e. of mean times, which is what a user waits
for in total; a per-repeat ratio's median would throw away how long the repeats took. The CI is a paired
percentile bootstrap: resample repeat indices with replacement and take the same indices for both
workloads, since they ran side by side in the same repeat and share its machine load.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import torch

from eebench.engine.strategies import speculative_strategies
from eebench.tracking.contract_timing import Ratio

BOOTSTRAP_RESAMPLES = 2000
CI_LEVEL = 0.95
CI_METHOD = (
    "paired percentile bootstrap over repeats (same resampled repeats for both workloads), "
    f"{BOOTSTRAP_RESAMPLES} resamples, 95%; estimate = ratio of summed repeat times"
)


def ratio_of_sums(baseline: list[float], candidate: list[float]) -> float:
    return sum(baseline) / sum(candidate)


def bootstrap_ratio_ci(
    baseline: list[float], candidate: list[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> list[float]:
    """[lo, hi] of the 95% paired bootstrap interval of sum(baseline) / sum(candidate)."""
    base, cand = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(base), size=(resamples, len(base)))
    ratios = base[picks].sum(axis=1) / cand[picks].sum(axis=1)
    tail = (1 - CI_LEVEL) / 2
    return [float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))]


def ratio_of(baseline: list[float], candidate: list[float], seed: int) -> Ratio:
    """baseline / candidate: the ratio of sums, its 95% CI, and the spread of the single-repeat ratios."""
    per_repeat = [b / c for b, c in zip(baseline, candidate)]
    return Ratio(
        value=ratio_of_sums(baseline, candidate),
        ci95=bootstrap_ratio_ci(baseline, candidate, seed),
        min=min(per_repeat),
        max=max(per_repeat),
        median_of_repeats=statistics.median(per_repeat),
    )


@dataclass
class PairedRatios:
    """baseline / candidate of the whole generation and of decoding alone, from the same repeats."""

    whole: Ratio
    decode: Ratio

    @classmethod
    def of(cls, baseline, candidate, seed: int) -> PairedRatios:
        """From two workloads' ``PhaseTimes`` (generation.py): per repeat, total and decode seconds."""
        return cls(ratio_of(baseline.total, candidate.total, seed), ratio_of(baseline.decode, candidate.decode, seed))


def depth_bound(costs, exit_indices: list[int], every_block: bool = False) -> float:
    """The largest speedup over the full-depth model that this exit pattern could give: the full model's
    weight reads per token over the blocks the exiting tokens still run, counting no exit head, gate or
    attention at all (so a real run always stays below it). ``every_block``: the strategy runs every
    block whatever exits (``full``), leaving only the final head to avoid."""
    if not exit_indices:
        return 1.0
    final = len(costs.exit_layers)
    index = torch.tensor(exit_indices)
    blocks = torch.tensor(
        [costs.num_layers if every_block else costs.blocks_run(i) for i in range(final + 1)], dtype=torch.float64
    )[index]
    cheapest = blocks * costs.block_cost + (index == final).double() * costs.lm_head_cost
    return costs.full_cost / float(cheapest.mean())


def depth_bound_flags(speedup: Ratio, vs_engine_full: PairedRatios, engine_full: Ratio, bound: float | None) -> list[str]:
    """Reasons why the measured speedups cannot be right: a CI wholly above what skipping the blocks
    could give. The depth-only ratios (against the engine's own full path) must stay below the bound;
    the speedup over transformers only by as much more as the engine's full path beats transformers."""
    if bound is None:
        return []
    flags = []
    depth_only = (("speedup_vs_engine_full", vs_engine_full.whole), ("decode_speedup_vs_engine_full", vs_engine_full.decode))
    for name, ratio in depth_only:
        low = ratio.ci95[0]
        if low > bound:
            flags.append(f"{name} CI lower bound {low:.3f} is above the depth bound {bound:.3f} of its own exit pattern")
    allowed = bound * max(1.0, engine_full.ci95[1])
    if speedup.ci95[0] > allowed:
        flags.append(
            f"speedup CI lower bound {speedup.ci95[0]:.3f} is above the depth bound {bound:.3f} "
            f"times the engine's full-path advantage over transformers (allowed up to {allowed:.3f})"
        )
    return flags


# Strategies whose tokens are drafted and then verified by the full model several at a time: a token's
# exit index does not say how many blocks it cost, so no depth bound applies to them.
SPECULATIVE = speculative_strategies()


def bound_for(strategy: str, costs, exits: list[int]) -> float | None:
    return None if strategy in SPECULATIVE else depth_bound(costs, exits, every_block=strategy == "full")
