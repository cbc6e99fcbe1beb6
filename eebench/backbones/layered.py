"""A uniform layered view of a decoder-only HF causal LM: embed -> blocks -> final readout -> lm_head.

Early exit needs to run blocks one at a time and stop; HF models only expose whole forwards. The view
is built from the model's family (eebench/backbones/families.py), which says where each piece is and
what the model's own forward adds around the blocks (embedding scales, learned or ALiBi positions,
rotary per layer type, sliding-window layers, logit scaling). Blocks are called with the keyword names
their signature uses and an explicit attention mask, so that multi-token calls against a partly filled
KV cache stay causal.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from eebench.backbones.families import Family, family_for, layer_types, sliding_windows
from eebench.errors import EEBenchError

_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


def _module_at(root: nn.Module, path: str) -> nn.Module | None:
    for name in path.split("."):
        root = getattr(root, name, None)
        if root is None:
            return None
    return root


class Readout(nn.Sequential):
    """What follows the last block before lm_head: the final norm (and OPT's project_out). Heads copy it."""


@dataclass
class LayeredModel:
    model: nn.Module
    family: Family
    token_embedding: nn.Module
    position_embedding: nn.Module | None
    embed_extras: list[nn.Module]
    blocks: nn.ModuleList
    norm: nn.Module
    lm_head: nn.Module
    rotary: nn.Module | None
    cache_kwarg: str
    layer_types: list[str]  # per block: full_attention | sliding_attention
    sliding_windows: list[int | None]  # per block: attention window, None for global attention
    additive_mask: bool  # eager attention adds the mask to the scores: it needs 0 / -inf, not booleans
    alibi_slopes: torch.Tensor | None = None  # [heads] (ALiBi families)
    _scale: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict)  # the last converted mask and ALiBi bias, reused by the next block

    @classmethod
    def from_model(cls, model: nn.Module) -> LayeredModel:
        family = family_for(model.config)
        base = getattr(model, "base_model", model)
        pieces = {name: _module_at(base, path) for name, path in (("embed", family.embed), ("blocks", family.blocks))}
        lm_head = model.get_output_embeddings()
        missing = [name for name, module in pieces.items() if module is None] + ([] if lm_head is not None else ["lm_head"])
        if missing:
            raise EEBenchError(
                f"backbone {type(model).__name__} (family {family.model_type!r}) lacks {', '.join(missing)}; "
                "it is not the transformers implementation eebench was tested with"
            )
        blocks = pieces["blocks"]
        params = inspect.signature(type(blocks[0]).forward).parameters
        cache_kwarg = next((name for name in _CACHE_KWARGS if name in params), None)
        if cache_kwarg is None:
            raise EEBenchError(f"cannot find the KV-cache argument of {type(blocks[0]).__name__}.forward")
        config, count = model.config, len(blocks)
        readout = Readout(*[m for m in (_module_at(base, p) for p in family.readout) if m is not None])
        extras = [m for m in (_module_at(base, p) for p in family.embed_extras) if m is not None]
        position = _module_at(base, family.position_embedding) if family.position_embedding else None
        rotary = getattr(base, "rotary_emb", None) if family.positions.startswith("rotary") else None
        view = cls(
            model,
            family,
            pieces["embed"],
            position,
            extras,
            blocks,
            readout,
            lm_head,
            rotary,
            cache_kwarg,
            layer_types(family, config, count),
            sliding_windows(family, config, count),
            getattr(config, "_attn_implementation", "eager") != "sdpa",
        )
        if family.positions == "alibi":
            from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

            view.alibi_slopes = _get_alibi_slopes(config.n_head, lm_head.weight.device)
        view._scale = {
            key: getattr(config, attr)
            for key, attr in (
                ("embed", family.embedding_multiplier),
                ("divide", family.logits_divisor),
                ("softcap", family.logit_softcap),
            )
            if attr and getattr(config, attr, None) is not None
        }
        return view

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def hidden_size(self) -> int:
        """Width of what the readout gives lm_head (heads and gates work at this width)."""
        return self.lm_head.weight.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.lm_head.weight.shape[0]

    def embed(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.token_embedding(input_ids)  # Gemma's sqrt(hidden) scale lives inside this module
        if "embed" in self._scale:
            hidden = hidden * self._scale["embed"]
        for module in self.embed_extras:
            hidden = module(hidden)
        if self.position_embedding is not None:
            if self.family.model_type == "opt":  # OPT's module takes positions by keyword and adds its offset of 2
                hidden = hidden + self.position_embedding(None, 0, position_ids=position_ids)
            else:
                hidden = hidden + self.position_embedding(position_ids)
        return hidden

    def rotary_embeddings(self, hidden: torch.Tensor, position_ids: torch.Tensor):
        """Rotary (cos, sin) for a block call; a dict by layer type where the family rotates per type (Gemma 3)."""
        if self.rotary is None:
            return None
        if self.family.positions == "rotary_per_layer_type":
            return {kind: self.rotary(hidden, position_ids, kind) for kind in sorted(set(self.layer_types))}
        return self.rotary(hidden, position_ids)

    def block_mask(self, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """The boolean mask as the additive one the attention would derive from it (0 / -inf for sdpa, as its
        kernels convert booleans; 0 / dtype min for eager). Consecutive blocks given the same mask object share
        one conversion."""
        if mask is None or mask.dtype != torch.bool:
            return mask
        memo = self._memo.get("mask")
        if memo is not None and memo[0] is mask and memo[1] == dtype:
            return memo[2]
        fill = torch.finfo(dtype).min if self.additive_mask else float("-inf")
        additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, fill)
        self._memo["mask"] = (mask, dtype, additive)  # holding the mask keeps its identity unique
        return additive

    def alibi(self, batch: int, keys: int, dtype: torch.dtype) -> torch.Tensor:
        """Bloom's ALiBi bias [batch * heads, 1, keys]: slope * key index, as transformers builds it unpadded."""
        memo = self._memo.get("alibi")
        if memo is not None and memo[0] == (batch, keys, dtype):
            return memo[1]
        positions = torch.arange(keys, device=self.alibi_slopes.device)
        bias = (self.alibi_slopes[:, None, None] * positions).repeat(batch, 1, 1).to(dtype)
        self._memo["alibi"] = ((batch, keys, dtype), bias)
        return bias

    def run_block(self, index, hidden, position_ids, attention_mask, cache=None, rotary=None) -> torch.Tensor:
        """One block; ``attention_mask`` None means the attention's own default (no mask, or top-left causal)."""
        kwargs = {
            "attention_mask": self.block_mask(attention_mask, hidden.dtype),
            "position_ids": position_ids,
            "use_cache": cache is not None,
        }
        if cache is not None:
            kwargs[self.cache_kwarg] = cache
        if isinstance(rotary, dict):
            rotary = rotary[self.layer_types[index]]
        if rotary is not None:
            kwargs["position_embeddings"] = rotary
        if self.alibi_slopes is not None:
            kwargs["alibi"] = self.alibi(hidden.shape[0], attention_mask.shape[-1], hidden.dtype)
            del kwargs["position_ids"]
        elif self.family.model_type == "falcon":
            kwargs["alibi"] = None  # a required argument of Falcon's blocks, unused with rotary
        out = self.blocks[index](hidden, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def final_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.logits_of_readout(self.norm(hidden))

    def logits_of_readout(self, readout: torch.Tensor) -> torch.Tensor:
        """lm_head (and the family's logit scaling) on what the final readout gave."""
        return self.scaled_logits(self.lm_head(readout))

    def scaled_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The family's logit scaling (divisor, soft cap) on lm_head's raw output, whole or some of its rows."""
        if "divide" in self._scale:
            logits = logits / self._scale["divide"]
        if "softcap" in self._scale:
            cap = self._scale["softcap"]
            logits = torch.tanh(logits / cap) * cap
        return logits


@torch.no_grad()
def check_against_forward(layered: LayeredModel, model: nn.Module, name: str, tokens: int = 8) -> None:
    """Refuse a model whose block-by-block run differs from its own forward (used for custom modelling code)."""
    device = layered.lm_head.weight.device
    ids = torch.arange(1, tokens + 1, device=device)[None] % layered.vocab_size
    positions = torch.arange(tokens, device=device)[None]
    mask = (positions[0, None, :] <= positions[0, :, None])[None, None]
    hidden = layered.embed(ids, positions)
    rotary = layered.rotary_embeddings(hidden, positions)
    for index in range(layered.num_layers):
        hidden = layered.run_block(index, hidden, positions, mask, None, rotary)
    expected = model(ids, use_cache=False).logits.float()
    if not torch.allclose(layered.final_logits(hidden).float(), expected, atol=1e-3, rtol=1e-3):
        raise EEBenchError(
            f"backbone.name_or_path={name!r}: its modelling code computes differently from the "
            f"{layered.family.model_type!r} family eebench knows; it is refused rather than run wrongly"
        )
