"""Which backbone families eebench runs block by block, and how each one computes.

A family is what ``config.model_type`` says the model IS, not which attribute names it happens to have:
two families with ``layers`` and ``norm`` can still differ in sliding-window layers, ALiBi, embedding
scales or logit soft-capping, and running one with the other's rules silently gives another model's
numbers. So every family eebench accepts is listed here with everything that differs, each one is
proven equal to transformers by tests/test_families.py on a tiny random model, and any other family
is refused in one line. The README's support table is rendered from this list (``eebench families``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eebench.errors import EEBenchError
from eebench.registry import Registry, did_you_mean

TESTED_TRANSFORMERS = "5.24.0"  # the version tests/test_families.py proved the families below against


@dataclass(frozen=True)
class Family:
    model_type: str
    examples: str  # checkpoints of this family, for the support table
    embed: str  # attribute path, relative to the base model, of the token embedding
    blocks: str
    readout: tuple[str, ...]  # modules between the last block and lm_head, in order; absent (None) ones are skipped
    positions: str = "rotary"  # rotary | rotary_per_layer_type | learned | alibi
    position_embedding: str | None = None  # learned absolute positions (added after project_in)
    embed_extras: tuple[str, ...] = ()  # modules applied to the token embeddings, in order (OPT project_in, Bloom's norm)
    windows: str = "none"  # none | all (config.sliding_window on every layer) | layer_types (per config.layer_types)
    attention: tuple[str, ...] = ("sdpa", "eager")  # implementations to try, in order
    embedding_multiplier: str | None = None  # config attribute the embeddings are multiplied by (Granite)
    logits_divisor: str | None = None  # config attribute the logits are divided by (Granite)
    logit_softcap: str | None = None  # config attribute: logits = cap * tanh(logits / cap) (Gemma 2/3)
    refuse_variant: Callable | None = None  # config -> reason this config variant is not supported, or None


def _falcon_variant(config) -> str | None:
    return "Falcon with alibi=true (e.g. falcon-rw) is not supported" if getattr(config, "alibi", False) else None


def _gemma3_variant(config) -> str | None:
    if getattr(config, "use_bidirectional_attention", False):
        return "Gemma 3 with use_bidirectional_attention=true (embedding models) is not a causal LM"
    return None


def _llama_like(model_type: str, examples: str, **kwargs) -> Family:
    return Family(model_type, examples, "embed_tokens", "layers", ("norm",), **kwargs)


# The registry of families (its key: the name an unknown model_type is reported under).
FAMILIES: Registry[Family] = Registry("backbone family", name_of=lambda family: family.model_type)
for _family in [
    _llama_like("llama", "Llama 2/3, SmolLM/SmolLM2, TinyLlama"),
    _llama_like("mistral", "Mistral 7B (sliding window on every layer)", windows="all"),
    _llama_like("qwen2", "Qwen2, Qwen2.5 (use_sliding_window per layer)", windows="layer_types"),
    _llama_like("qwen3", "Qwen3", windows="layer_types"),
    _llama_like("phi3", "Phi-3, Phi-3.5", windows="all"),
    _llama_like("olmo2", "OLMo 2"),
    _llama_like("stablelm", "StableLM 2, StableLM 3B (partial rotary)"),
    _llama_like(
        "granite",
        "Granite 3 (embedding / logit multipliers)",
        embedding_multiplier="embedding_multiplier",
        logits_divisor="logits_scaling",
    ),
    _llama_like("starcoder2", "StarCoder2", windows="all"),
    _llama_like("gemma", "Gemma (scaled embeddings)"),
    _llama_like(
        "gemma2",
        "Gemma 2 (alternating sliding layers, soft-capping)",
        windows="layer_types",
        attention=("eager",),
        logit_softcap="final_logit_softcapping",
    ),
    _llama_like(
        "gemma3_text",
        "Gemma 3 text-only (1B), rotary per layer type",
        positions="rotary_per_layer_type",
        windows="layer_types",
        logit_softcap="final_logit_softcapping",
        refuse_variant=_gemma3_variant,
    ),
    Family(
        "phi",
        "Phi-1, Phi-1.5, Phi-2 (parallel attention + MLP, partial rotary)",
        "embed_tokens",
        "layers",
        ("final_layernorm",),
    ),
    Family("gpt_neox", "Pythia, GPT-NeoX-20B", "embed_in", "layers", ("final_layer_norm",)),
    Family("gptj", "GPT-J 6B", "wte", "h", ("ln_f",)),
    Family("falcon", "Falcon 7B/40B (rotary)", "word_embeddings", "h", ("ln_f",), refuse_variant=_falcon_variant),
    Family("gpt2", "GPT-2, DistilGPT2", "wte", "h", ("ln_f",), positions="learned", position_embedding="wpe"),
    Family("gpt_bigcode", "SantaCoder, StarCoder 1", "wte", "h", ("ln_f",), positions="learned", position_embedding="wpe"),
    Family(
        "opt",
        "OPT 125m-66B (project_in/out, learned positions with offset 2)",
        "decoder.embed_tokens",
        "decoder.layers",
        ("decoder.final_layer_norm", "decoder.project_out"),
        positions="learned",
        position_embedding="decoder.embed_positions",
        embed_extras=("decoder.project_in",),
    ),
    Family(
        "bloom",
        "BLOOM, BLOOMZ (ALiBi)",
        "word_embeddings",
        "h",
        ("ln_f",),
        positions="alibi",
        embed_extras=("word_embeddings_layernorm",),
        attention=("eager",),
    ),
]:
    FAMILIES.register(_family)

# Families users reach for that are refused on purpose, with the reason shown in the error and the table.
REFUSED: dict[str, str] = {
    "gemma3": "multimodal Gemma 3; use a text-only checkpoint (model_type gemma3_text)",
    "gpt_neo": "local-attention layers are not implemented in the engine's masks",
    "mpt": "ALiBi with clip_qkv / prefix-LM options is not implemented",
    "llama4": "chunked attention and mixture-of-experts layers are not implemented",
    "mixtral": "not yet proven equal to transformers (mixture-of-experts routing over ragged batches)",
}


def supported_list() -> str:
    return ", ".join(sorted(FAMILIES))


def family_for(config) -> Family:
    """The family of a transformers config; one-line EEBenchError for anything not proven equal to transformers."""
    model_type = getattr(config, "model_type", None)
    if model_type in REFUSED:
        raise EEBenchError(
            f"backbone family {model_type!r} is not supported ({REFUSED[model_type]}); supported: {supported_list()}"
        )
    if model_type not in FAMILIES:
        raise EEBenchError(
            f"backbone family {model_type!r} is not supported; supported: {supported_list()}{did_you_mean(model_type, FAMILIES)}"
        )
    family = FAMILIES.get(model_type)
    reason = family.refuse_variant(config) if family.refuse_variant else None
    if reason:
        raise EEBenchError(f"backbone family {model_type!r}: {reason}; supported: {supported_list()}")
    return family


def layer_types(family: Family, config, num_layers: int) -> list[str]:
    """Each block's attention kind: 'full_attention' or 'sliding_attention' (rotary and masks follow it)."""
    if family.windows == "layer_types":
        kinds = list(config.layer_types)
        unknown = sorted(set(kinds) - {"full_attention", "sliding_attention"})
        if unknown:
            raise EEBenchError(
                f"backbone family {family.model_type!r}: layer types {unknown} are not supported; "
                "allowed: full_attention, sliding_attention"
            )
        return kinds
    sliding = family.windows == "all" and getattr(config, "sliding_window", None) is not None
    return ["sliding_attention" if sliding else "full_attention"] * num_layers


def sliding_windows(family: Family, config, num_layers: int) -> list[int | None]:
    """Per block: a query at position p sees keys in (p - window, p], or every earlier key when None."""
    window = getattr(config, "sliding_window", None)
    return [window if kind == "sliding_attention" else None for kind in layer_types(family, config, num_layers)]


def markdown_table() -> str:
    """The README's support table, rendered from the registry so that the two never disagree."""
    lines = ["| family (`model_type`) | checkpoints | status | tested with transformers |", "|---|---|---|---|"]
    for name in sorted(FAMILIES):
        lines.append(f"| `{name}` | {FAMILIES.get(name).examples} | equal to transformers | {TESTED_TRANSFORMERS} |")
    for name in sorted(REFUSED):
        lines.append(f"| `{name}` | - | refused: {REFUSED[name]} | {TESTED_TRANSFORMERS} |")
    lines.append(f"| anything else | - | refused with a one-line error | {TESTED_TRANSFORMERS} |")
    return "\n".join(lines)
