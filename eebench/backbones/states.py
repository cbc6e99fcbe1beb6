"""Hidden states of a frozen backbone at chosen blocks, for head training and traces.

Lives next to the backbone (not in heads/) so traces and the head trainer share it without importing each other.
"""

from __future__ import annotations

import torch


def hidden_states_at(model, input_ids: torch.Tensor, exit_layers: list[int]):
    """One backbone pass: (final logits, [output of block l for l in exit_layers])."""
    out = model(input_ids, output_hidden_states=True, use_cache=False)
    # hidden_states[0] is the embedding output, so block l's output is hidden_states[l + 1].
    return out.logits, [out.hidden_states[layer + 1] for layer in exit_layers]


@torch.no_grad()
def block_outputs(layered, input_ids: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """Outputs of the given blocks (before any final norm), from one pass of the base model without the lm_head.

    Hooks rather than ``output_hidden_states``: whether the last entry of ``hidden_states`` is normed differs
    across families and transformers versions, and the vocabulary projection is not needed here.
    """
    captured: dict[int, torch.Tensor] = {}

    def keep(index: int):
        def hook(_module, _args, output):
            captured[index] = output[0] if isinstance(output, tuple) else output

        return hook

    handles = [layered.blocks[index].register_forward_hook(keep(index)) for index in sorted(set(layers))]
    try:
        base = getattr(layered.model, "base_model", layered.model)
        base(input_ids=input_ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[index] for index in layers]
