"""A uniform layered view of a decoder-only HF causal LM: embed -> blocks -> final norm -> lm_head.

Early exit needs to run blocks one at a time and stop; HF models only expose whole forwards. This view
finds the pieces by architecture family and calls each block with the keyword names its signature uses
(those differ across families and transformers versions), with an explicit boolean attention mask so
that multi-token calls against a partly filled KV cache stay causal.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from eebench.errors import EEBenchError

SUPPORTED_FAMILIES = "llama-style (Llama, SmolLM2, Qwen2, Mistral, Phi-3), GPT-NeoX, GPT-2"
_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


def _first_attr(module: nn.Module, names: tuple[str, ...]) -> Optional[nn.Module]:
    for name in names:
        if getattr(module, name, None) is not None:
            return getattr(module, name)
    return None


@dataclass
class LayeredModel:
    model: nn.Module
    token_embedding: nn.Module
    position_embedding: Optional[nn.Module]  # learned absolute positions (GPT-2)
    blocks: nn.ModuleList
    norm: nn.Module
    lm_head: nn.Module
    rotary: Optional[nn.Module]
    cache_kwarg: str

    @classmethod
    def from_model(cls, model: nn.Module) -> "LayeredModel":
        base = getattr(model, "base_model", model)
        blocks = _first_attr(base, ("layers", "h"))
        norm = _first_attr(base, ("norm", "final_layer_norm", "ln_f"))
        embed = _first_attr(base, ("embed_tokens", "embed_in", "wte"))
        lm_head = model.get_output_embeddings()
        if blocks is None or norm is None or embed is None or lm_head is None:
            arch = type(model).__name__
            raise EEBenchError(f"architecture {arch} is not supported; allowed: {SUPPORTED_FAMILIES}")
        params = inspect.signature(type(blocks[0]).forward).parameters
        cache_kwarg = next((name for name in _CACHE_KWARGS if name in params), None)
        if cache_kwarg is None:
            raise EEBenchError(f"cannot find the KV-cache argument of {type(blocks[0]).__name__}.forward")
        return cls(model, embed, getattr(base, "wpe", None), blocks, norm, lm_head, getattr(base, "rotary_emb", None), cache_kwarg)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def hidden_size(self) -> int:
        return self.lm_head.weight.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.lm_head.weight.shape[0]

    def embed(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.token_embedding(input_ids)
        if self.position_embedding is not None:
            hidden = hidden + self.position_embedding(position_ids)
        return hidden

    def rotary_embeddings(self, hidden: torch.Tensor, position_ids: torch.Tensor):
        return None if self.rotary is None else self.rotary(hidden, position_ids)

    def run_block(self, index, hidden, position_ids, attention_mask, cache=None, rotary=None) -> torch.Tensor:
        kwargs = {"attention_mask": attention_mask, "position_ids": position_ids, "use_cache": cache is not None}
        if cache is not None:
            kwargs[self.cache_kwarg] = cache
        if rotary is not None:
            kwargs["position_embeddings"] = rotary
        out = self.blocks[index](hidden, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def final_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(hidden))

