"""Simulate an exit policy on a trace: exit histogram, agreement with the full model, theoretical speedup."""
from __future__ import annotations

import torch

from eebench.engine.flops import CostModel
from eebench.exits.policy import ExitPolicy
from eebench.traces.trace import Trace


def exit_indices(trace: Trace, policy: ExitPolicy) -> torch.Tensor:
    """Per token, the index of the first confident head, or num_heads when none is (the full model)."""
    return policy.first_exit(trace.uncertainty(policy.metric))


def simulate(trace: Trace, policy: ExitPolicy, costs: CostModel) -> dict:
    first = exit_indices(trace, policy)
    num_heads = len(policy.exit_layers)
    emitted = torch.cat([trace.head_argmax, trace.final_argmax[None]])[first, torch.arange(len(first))]
    counts = torch.bincount(first, minlength=num_heads + 1).double() / len(first)
    fraction = {str(layer): float(counts[i]) for i, layer in enumerate(policy.exit_layers)}
    fraction["final"] = float(counts[num_heads])
    blocks = torch.tensor([costs.blocks_run(i) for i in range(num_heads + 1)], dtype=torch.float64)
    return {
        "fraction": fraction,
        "mean_layers": float(blocks[first].mean()),
        "agreement": float((emitted == trace.final_argmax).double().mean()),
        "theoretical_speedup": costs.theoretical_speedup(first),
        "depth_speedup": costs.depth_speedup(first),
        "tokens": len(first),
    }
