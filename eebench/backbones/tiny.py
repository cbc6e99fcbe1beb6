"""Tiny randomly initialised causal LMs of each supported family, for tests and smoke runs (no hub)."""

from __future__ import annotations

from pathlib import Path

import torch

from eebench.errors import EEBenchError

TINY_ARCHS = ("llama", "qwen2", "mistral", "phi3", "gpt_neox", "gpt2")
_SAMPLE_TEXT = (
    "Early exit lets a language model stop computing once an intermediate layer is confident. "
    "The quick brown fox jumps over the lazy dog while the model predicts the next token. "
)


def _tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([_SAMPLE_TEXT] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


WINDOW = 4  # tiny sliding window: test prompts are longer, so the window really cuts
# Every family of the registry (eebench/backbones/families.py), each with what makes it differ switched on
# (sliding layers, GQA, partial rotary, project_in/out, multipliers, soft-capping), and a few refused ones.
FAMILY_ARCHS = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "olmo2",
    "stablelm",
    "granite",
    "starcoder2",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi",
    "gpt_neox",
    "gptj",
    "falcon",
    "gpt2",
    "gpt_bigcode",
    "opt",
    "bloom",
)
REFUSED_ARCHS = ("gpt_neo", "mpt", "codegen")
_GQA = dict(num_attention_heads=4, num_key_value_heads=2)
_GEMMA = dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW, **_GQA)
_EXTRA = {
    "mistral": dict(sliding_window=WINDOW, **_GQA),
    "qwen2": dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1, **_GQA),
    "qwen3": dict(head_dim=16, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=2, **_GQA),
    "phi3": dict(sliding_window=WINDOW, **_GQA),
    "granite": dict(embedding_multiplier=2.0, logits_scaling=3.0, residual_multiplier=0.5, attention_multiplier=0.2, **_GQA),
    "starcoder2": dict(sliding_window=WINDOW, **_GQA),
    "gemma": dict(head_dim=16, **_GQA),
    "gemma2": dict(final_logit_softcapping=3.0, attn_logit_softcapping=5.0, **_GEMMA),
    "gemma3_text": dict(final_logit_softcapping=3.0, layer_types=["sliding_attention", "full_attention"] * 3, **_GEMMA),
    "phi": _GQA,
    "gpt_neox": dict(num_attention_heads=4),
    "falcon": dict(num_attention_heads=4, multi_query=True, parallel_attn=True),
    "bloom": dict(n_head=4),
    "opt": dict(num_attention_heads=4, ffn_dim=128, word_embed_proj_dim=32, max_position_embeddings=512),
    "gpt_neo": dict(num_heads=4, window_size=WINDOW),
    "mpt": dict(d_model=64, n_heads=4, n_layers=2),
    "codegen": dict(n_embd=64, n_layer=2, n_head=4, rotary_dim=8),
}
_GPT2_NAMES = ("gpt2", "gpt_bigcode", "gptj")


def _config(arch: str, vocab: int, layers: int, hidden: int, family_features: bool):
    from transformers import AutoConfig

    common = dict(vocab_size=vocab, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if arch in _GPT2_NAMES:
        extra = dict(rotary_dim=8) if arch == "gptj" else {}
        return AutoConfig.for_model(arch, n_embd=hidden, n_layer=layers, n_head=4, n_positions=512, **extra, **common)
    if arch in ("mpt", "codegen"):
        return AutoConfig.for_model(arch, **_EXTRA[arch], **common)
    # The six TINY_ARCHS keep their plain configs (other tests use them) unless the family features are asked for.
    plain = {"gpt_neox": dict(num_attention_heads=4)}.get(arch, dict(_GQA, tie_word_embeddings=(arch == "llama")))
    extra = dict(_EXTRA.get(arch, plain) if family_features or arch not in TINY_ARCHS else plain)
    if "layer_types" in extra:
        extra["layer_types"] = extra["layer_types"][:layers]
    sizes = dict(hidden_size=hidden, num_hidden_layers=layers)
    if arch == "bloom":
        sizes = dict(hidden_size=hidden, n_layer=layers)
    elif arch not in ("opt", "gpt_neo"):
        sizes.update(intermediate_size=hidden * 2, max_position_embeddings=512)
    elif arch == "gpt_neo":
        sizes = dict(
            hidden_size=hidden,
            num_layers=layers,
            max_position_embeddings=512,
            attention_types=[[["global", "local"], layers // 2]],
        )
    return AutoConfig.for_model(arch, **sizes, **extra, **common)


def make_tiny_model(
    arch: str,
    out_dir: str | Path,
    num_layers: int = 6,
    hidden: int = 64,
    vocab: int = 384,
    seed: int = 0,
    family_features: bool = False,
) -> Path:
    """Write a random model + BPE tokenizer of ``arch`` to ``out_dir`` and return the directory.

    ``family_features`` switches on what makes the family differ (sliding windows, multipliers, ...) for the
    six TINY_ARCHS too; every other family always gets them.
    """
    from transformers import AutoModelForCausalLM

    known = dict.fromkeys(TINY_ARCHS + FAMILY_ARCHS + REFUSED_ARCHS)
    if arch not in known:
        raise EEBenchError(f"tiny model arch={arch!r} is unknown; allowed: {', '.join(known)}")
    torch.manual_seed(seed)
    tokenizer = _tokenizer(vocab)
    model = AutoModelForCausalLM.from_config(_config(arch, len(tokenizer), num_layers, hidden, family_features))
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
