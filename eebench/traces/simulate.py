"""Simulate an exit policy on a trace: exit histogram, agreement with the full model, theoretical speedup."""

from __future__ import annotations

import torch

from eebench.analysis.paired import ONE_SIDED_Z95
from eebench.engine.flops import CostModel
from eebench.exits.policy import ExitPolicy
from eebench.traces.trace import Trace


def exit_indices(trace: Trace, policy: ExitPolicy) -> torch.Tensor:
    """Per token, the index of the first confident head, or num_heads when none is (the full model)."""
    return policy.first_exit(trace.uncertainty(policy.metric))


def exit_numbers(first: torch.Tensor, exit_layers: list[int], costs: CostModel) -> dict:
    """Exit histogram, mean depth and the cost model's speedups of tokens leaving at ``first`` (head index,
    or len(exit_layers) for the final layer): the same numbers for held-out prose and for task tokens."""
    num_heads = len(exit_layers)
    counts = torch.bincount(first, minlength=num_heads + 1).double() / len(first)
    fraction = {str(layer): float(counts[i]) for i, layer in enumerate(exit_layers)}
    fraction["final"] = float(counts[num_heads])
    blocks = torch.tensor([costs.blocks_run(i) for i in range(num_heads + 1)], dtype=torch.float64)
    return {
        "fraction": fraction,
        "mean_layers": float(blocks[first].mean()),
        "theoretical_speedup": costs.theoretical_speedup(first),
        "depth_speedup": costs.depth_speedup(first),
        "tokens": len(first),
    }


def simulate(trace: Trace, policy: ExitPolicy, costs: CostModel) -> dict:
    first = exit_indices(trace, policy)
    emitted = torch.cat([trace.head_argmax, trace.final_argmax[None]])[first, torch.arange(len(first))]
    return {**exit_numbers(first, policy.exit_layers, costs), "agreement": float((emitted == trace.final_argmax).double().mean())}


def heldout_check(trace: Trace, policy: ExitPolicy, target: float, sequence_len: int | None = None) -> dict:
    """Per head, the agreement of the tokens the policy let exit there, and pooled over every exited token.

    ``simulate``'s agreement counts tokens that reached the final layer, which agree by definition; this
    check leaves them out, so a head that exits too eagerly shows as a miss (``target_met`` false).

    The held-out set is itself a sample: a policy whose true agreement equals the target falls below it here
    about half the time. Each head's standard error treats the held-out sequences of ``sequence_len`` tokens
    as the independent units (tokens of one passage agree or disagree together), and a miss is significant
    only when the agreement lies more than a one-sided 95% margin below the target."""
    first = exit_indices(trace, policy)
    agree = trace.agree  # [heads, tokens]: the head's argmax equals the final layer's
    groups = torch.arange(len(first)) // (sequence_len or len(first) or 1)
    heads, hits = [], []
    for i, layer in enumerate(policy.exit_layers):
        exited = first == i
        count = int(exited.sum())
        agreement = float(agree[i][exited].double().mean()) if count else None
        stderr = clustered_stderr(agree[i][exited], groups[exited]) if count else None
        hits.append(agree[i][exited])
        heads.append(
            {
                "layer": layer,
                "agreement": agreement,
                "tokens": count,
                "target_met": agreement is None or agreement >= target,
                "agreement_stderr": stderr,
                "significant_miss": agreement is not None and stderr is not None and agreement + ONE_SIDED_Z95 * stderr < target,
            }
        )
    pooled = torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
    return {
        "heads": heads,
        "exited_agreement": float(pooled.double().mean()) if len(pooled) else None,
        "exited_tokens": len(pooled),
        "tokens": len(first),
        "target_met": all(h["target_met"] for h in heads),
    }


def clustered_stderr(hits: torch.Tensor, groups: torch.Tensor) -> float | None:
    """Standard error of the mean of ``hits`` with ``groups`` as the independent units (the cluster-robust
    variance of a ratio estimator); None with fewer than two groups, where it cannot be estimated."""
    _, index = torch.unique(groups, return_inverse=True)
    clusters = int(index.max()) + 1 if len(index) else 0
    if clusters < 2:
        return None
    counts = torch.bincount(index, minlength=clusters).double()
    sums = torch.bincount(index, weights=hits.double(), minlength=clusters)
    mean = sums.sum() / counts.sum()
    residual = sums - mean * counts
    return float((clusters / (clusters - 1) * (residual**2).sum()).sqrt() / counts.sum())
