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
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>")


def _config(arch: str, vocab: int, layers: int, hidden: int):
    from transformers import AutoConfig

    common = dict(vocab_size=vocab, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if arch == "gpt2":
        return AutoConfig.for_model("gpt2", n_embd=hidden, n_layer=layers, n_head=4, n_positions=512, **common)
    if arch == "gpt_neox":
        return AutoConfig.for_model(
            "gpt_neox", hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
            intermediate_size=hidden * 2, max_position_embeddings=512, **common,
        )
    return AutoConfig.for_model(
        arch, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=hidden * 2, max_position_embeddings=512, tie_word_embeddings=(arch == "llama"), **common,
    )


def make_tiny_model(arch: str, out_dir: str | Path, num_layers: int = 6, hidden: int = 64, vocab: int = 384, seed: int = 0) -> Path:
    """Write a random model + BPE tokenizer of ``arch`` to ``out_dir`` and return the directory."""
    from transformers import AutoModelForCausalLM

    if arch not in TINY_ARCHS:
        raise EEBenchError(f"tiny model arch={arch!r} is unknown; allowed: {', '.join(TINY_ARCHS)}")
    torch.manual_seed(seed)
    tokenizer = _tokenizer(vocab)
    model = AutoModelForCausalLM.from_config(_config(arch, len(tokenizer), num_layers, hidden))
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
