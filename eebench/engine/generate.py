"""Greedy generation with real early exit: blocks after a token's exit are not run for that token.

``generate(lm, input_ids, max_new_tokens, heads=None, policy=None, strategy="lazy", eos_token_id=None,
*, attention_mask=None, max_draft=5, draft_exits=None, exit_layer=None, draft_length=None) -> GenerationOutput``

Prompts: a [B, T] tensor (all rows real tokens, or with ``attention_mask`` marking the real ones, e.g.
left padding), or a list of 1-D (or [1, T]) prompt tensors of any lengths. Every sequence exits on its
own and its output equals running it alone. The first new token always comes from the prompt pass
(full depth, except ``static``).

Strategies (see layerwise.py for the KV modes, speculative.py for the speculative ones):
- ``full``: exits pick the token but every block still runs (exact KV; the reference for drift).
- ``lazy``: exited positions' deeper KV is filled batched with the next deep token (output = ``full``).
- ``copy``: CALM-style; the exited hidden state is the input of every deeper block for that position.
- ``skip``: deeper blocks never see exited positions (their KV lacks them; true positions are kept).
- ``static``: every token, the first included, exits at block ``exit_layer`` through the model's own
  final norm + lm_head (or through the head at that block when ``heads`` is given); deeper blocks never run.
- ``dssd``: dynamic self-speculative decoding with the heads and policy (up to ``max_draft`` drafts; with
  ``draft_exits``, drafted only by the heads at those blocks: a deep draft costs nearly a full pass).
- ``layerskip``: self-speculation drafting ``draft_length`` (default ``max_draft``) tokens from block
  ``exit_layer`` through the model's own lm_head (or the head there); output = full greedy.
Without heads, ``full``/``lazy``/``copy``/``skip`` are plain full-depth greedy decoding.

Exit indices index ``output.exit_layers``; ``len(exit_layers)`` means the token came from the full model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from eebench.backbones.layered import LayeredModel
from eebench.engine.exit_plan import ExitPlan, confidence_exits, fixed_exit, no_exits
from eebench.engine.host import to_device
from eebench.engine.kv import RaggedKVCache
from eebench.engine.layerwise import LayerwiseDecoder, Request, final_predictions
from eebench.engine.speculative import SpeculationStats, SpeculativeDecoder
from eebench.engine.strategies import engine_strategies, speculative_strategies
from eebench.errors import require

STRATEGIES = engine_strategies()  # the registry in strategies.py is the one list of names
_SPECULATIVE = tuple(s for s in speculative_strategies() if s in STRATEGIES)


@dataclass
class GenerationOutput:
    tokens: torch.Tensor  # [B, n] new tokens; rows that stopped at EOS are padded with EOS
    # Per new token, the exit index: every row's list concatenated in row order (what exit counts tally),
    # and the same labels split by row (what per-sequence views read).
    flat_exit_indices: list[int] = field(default_factory=list)
    row_exit_indices: list[list[int]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # new tokens per row, EOS included
    exit_layers: list[int] = field(default_factory=list)  # the block each exit index stands for
    speculation: SpeculationStats | None = None  # dssd / layerskip only
    kv_cache_bytes: int = 0  # what the engine's KV cache allocated for this call (see RaggedKVCache)


@torch.no_grad()
def generate(
    lm: LayeredModel,
    input_ids,
    max_new_tokens: int,
    heads=None,
    policy=None,
    strategy: str = "lazy",
    eos_token_id: int | None = None,
    *,
    attention_mask=None,
    max_draft: int = 5,
    draft_exits: list[int] | None = None,
    exit_layer: int | None = None,
    draft_length: int | None = None,
) -> GenerationOutput:
    """Greedy decoding of one or more prompts with the given early-exit strategy."""
    require(strategy in STRATEGIES, f"engine strategy={strategy!r} is unknown; allowed: {', '.join(STRATEGIES)}")
    require(
        isinstance(max_new_tokens, int) and max_new_tokens >= 1,
        f"max_new_tokens={max_new_tokens!r} is invalid; allowed: an integer >= 1",
    )
    prompts = split_prompts(input_ids, attention_mask)
    device = lm.lm_head.weight.device
    capacity = max(len(p) for p in prompts) + max_new_tokens + 1
    if strategy in _SPECULATIVE:
        drafts = max_draft if strategy == "dssd" or draft_length is None else draft_length
        require(isinstance(drafts, int) and drafts >= 1, f"draft length {drafts!r} is invalid; allowed: an integer >= 1")
        plan = _speculation_plan(lm, strategy, heads, policy, exit_layer, draft_exits)
        speculative = SpeculativeDecoder(
            LayerwiseDecoder(lm, plan, "lazy", len(prompts), capacity, device), drafts, max_new_tokens, eos_token_id
        )
        sequences = speculative.run(prompts)
        rows = [(to_device(s.tokens, device), s.labels) for s in sequences]
        return _output(rows, plan, eos_token_id, device, speculative.decoder.cache, speculative.stats)
    plan, mode = _plain_plan(lm, strategy, heads, policy, exit_layer)
    decoder = LayerwiseDecoder(lm, plan, mode, len(prompts), capacity, device)
    rows = _decode(decoder, prompts, max_new_tokens, eos_token_id, prompt_may_exit=strategy == "static")
    return _output(rows, plan, eos_token_id, device, decoder.cache)


def split_prompts(input_ids, attention_mask=None) -> list[torch.Tensor]:
    """The real tokens of each prompt, as 1-D tensors."""
    if isinstance(input_ids, (list, tuple)):
        require(attention_mask is None, "attention_mask is only for a [batch, length] tensor of prompts, not a list")
        prompts = [p.reshape(-1) for p in input_ids]
    else:
        require(
            input_ids.dim() == 2,
            f"input_ids has shape {tuple(input_ids.shape)}; allowed: [batch, length] or a list of 1-D prompts",
        )
        if attention_mask is None:
            prompts = list(input_ids)
        else:
            require(
                attention_mask.shape == input_ids.shape,
                f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids {tuple(input_ids.shape)}",
            )
            prompts = [row[mask.bool()] for row, mask in zip(input_ids, attention_mask)]
    require(len(prompts) > 0 and all(len(p) > 0 for p in prompts), "every prompt needs at least one token")
    return prompts


def _plain_plan(lm, strategy: str, heads, policy, exit_layer) -> tuple[ExitPlan, str]:
    if strategy == "static":
        return fixed_exit(lm, exit_layer, heads), "skip"
    return (no_exits() if heads is None else confidence_exits(heads, policy)), strategy


def _speculation_plan(lm, strategy: str, heads, policy, exit_layer, draft_exits: list[int] | None) -> ExitPlan:
    # A draft exit at the last block would already be full depth: nothing left to verify lazily.
    deepest = lm.num_layers - 2
    if strategy == "layerskip":
        return fixed_exit(lm, exit_layer, heads, deepest=deepest)
    require(heads is not None and policy is not None, "strategy='dssd' needs exit heads and an exit policy")
    require(
        max(heads.exit_layers) <= deepest,
        f"dssd exit heads must sit below the last block; exit_layers={heads.exit_layers}, allowed: 0..{deepest}",
    )
    return confidence_exits(heads, policy, draft_exits)


def _decode(decoder: LayerwiseDecoder, prompts, max_new_tokens: int, eos_token_id, prompt_may_exit: bool):
    """One token per step per unfinished sequence; returns per row (tokens [n], exit labels).

    Tokens stay on the device as the next step's input; the host reads them only to test for EOS.
    """
    tokens = [[] for _ in prompts]
    labels = [[] for _ in prompts]
    requests = [Request(row, p, 0, may_exit=prompt_may_exit) for row, p in enumerate(prompts)]
    while requests:
        for row, (token, label) in _step_tokens(decoder, requests).items():
            tokens[row].append(token)
            labels[row].append(label)
        at_eos = _rows_at_eos(tokens, requests, eos_token_id)
        requests = [
            Request(r.row, tokens[r.row][-1], r.start + len(r.tokens))
            for r in requests
            if len(tokens[r.row]) < max_new_tokens and r.row not in at_eos
        ]
    return [(torch.cat(t), label) for t, label in zip(tokens, labels)]


def _rows_at_eos(tokens: list[list[torch.Tensor]], requests: list[Request], eos_token_id) -> set[int]:
    """The rows whose newest token is EOS, read back in one transfer for all rows (each read waits for the device)."""
    if eos_token_id is None:
        return set()
    newest = torch.cat([tokens[r.row][-1] for r in requests]).tolist()
    return {r.row for r, token in zip(requests, newest) if token == eos_token_id}


def _step_tokens(decoder: LayerwiseDecoder, requests: list[Request]) -> dict[int, tuple[torch.Tensor, int]]:
    """Per row, the step's token as a [1] tensor on the decoder's device, and its exit label."""
    result = decoder.step(requests)
    device = decoder.cache.device
    chosen = {row: (to_device([token], device), label) for row, (label, token) in result.exits.items()}
    deep = sorted(result.finals)
    if deep:
        predicted = final_predictions(decoder.lm, [result.finals[row] for row in deep], last_only=True)
        chosen.update({row: (p, decoder.plan.full_label) for row, p in zip(deep, predicted)})
    return chosen


def _output(
    rows, plan: ExitPlan, eos_token_id, device, cache: RaggedKVCache, stats: SpeculationStats | None = None
) -> GenerationOutput:
    width = max(len(tokens) for tokens, _ in rows)
    pad = 0 if eos_token_id is None else eos_token_id  # only EOS-stopped rows are ever short
    table = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    for i, (tokens, _) in enumerate(rows):
        table[i, : len(tokens)] = tokens
    per_row = [labels for _, labels in rows]
    flat = [label for labels in per_row for label in labels]
    return GenerationOutput(
        tokens=table,
        flat_exit_indices=flat,
        row_exit_indices=per_row,
        lengths=[len(t) for t, _ in rows],
        exit_layers=list(plan.exit_layers),
        speculation=stats,
        kv_cache_bytes=cache.allocated_bytes(),
    )
