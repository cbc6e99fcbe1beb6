"""Tiny-model setups for engine tests (test support, not part of the package),
where early exits and drafts really happen and sometimes fail.

A freshly initialised tiny model barely changes its residual stream after the embedding (tied models
then just repeat their last input token) and its heads are close to uniform, so every exit decision
sits on a numerical knife edge. These helpers make the blocks matter, damp the deeper ones so that
early readouts mostly (not always) agree with the full model, and sharpen the heads so that confidence
varies from token to token.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig
from eebench.exits.confidence import uncertainty
from eebench.exits.policy import ExitPolicy
from eebench.heads import ExitHeads


@torch.no_grad()
def make_depth_matter(lm, scale: float = 0.1, deep_damping: float = 0.3, shallow_blocks: int = 2, seed: int = 0) -> None:
    """Redraw every block's weight matrices (std ``scale``); blocks after ``shallow_blocks`` are damped."""
    generator = torch.Generator().manual_seed(seed)
    for index, block in enumerate(lm.blocks):
        std = scale * (deep_damping if index >= shallow_blocks else 1.0)
        for param in block.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


@torch.no_grad()
def imperfect_heads(lm, exit_layers: list[int], noise: float = 0.5, sharpness: float = 10.0, seed: int = 1) -> ExitHeads:
    """Heads copied from the lm_head, sharpened, plus noise (relative to the weights' std) so they err."""
    heads = ExitHeads.create(lm, exit_layers, init_from_lm_head=True)
    generator = torch.Generator().manual_seed(seed)
    for head in heads.heads:
        weight = head.proj.weight
        # Drawn on the host, so the heads are the same on every device.
        perturbation = torch.randn(weight.shape, generator=generator).to(weight.device) * noise * float(weight.std())
        weight.copy_((weight + perturbation) * sharpness)
    return heads


@torch.no_grad()
def median_entropy_policy(model, heads: ExitHeads, prompts: list[torch.Tensor]) -> ExitPolicy:
    """Thresholds at each head's median entropy over the prompts, so about half the tokens exit."""
    per_head = [[] for _ in heads.exit_layers]
    for prompt in prompts:
        hidden = model(prompt[None].to(model.device), output_hidden_states=True).hidden_states
        for index, layer in enumerate(heads.exit_layers):
            per_head[index].append(uncertainty("entropy", heads.logits(index, hidden[layer + 1]))[0])
    levels = [float(torch.cat(values).median()) for values in per_head]
    return ExitPolicy(list(heads.exit_layers), "entropy", levels)


def random_prompts(lengths: list[int], seed: int = 0, high: int = 300) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(1, high, (length,), generator=generator) for length in lengths]


def tiny_backbone(model_dir, exit_layers: list[int] = (1, 3), device: str = "cpu"):
    """A tiny backbone whose depth matters, with imperfect heads at ``exit_layers``. float32 whatever the CPU:
    the engine tests assert token-for-token equality, which bfloat16 (dtype=auto on a bf16 CPU) does not keep.
    The same weights on every ``device`` (benchmarks/gpu_check.py runs it on CUDA)."""
    backbone = load_backbone(BackboneConfig(name="tiny", name_or_path=str(model_dir), dtype="float32"), device)
    make_depth_matter(backbone.layered)
    return backbone, imperfect_heads(backbone.layered, list(exit_layers))


@torch.no_grad()
def reference_greedy(model, prompt: torch.Tensor, max_new_tokens: int, eos_token_id: int | None = None) -> torch.Tensor:
    """transformers' own greedy decoding of one prompt: the new tokens, 1-D."""
    if eos_token_id is None:  # never stop early, whatever the model config says
        kwargs = {"min_new_tokens": max_new_tokens}
    else:
        kwargs = {"eos_token_id": eos_token_id, "pad_token_id": eos_token_id}
    out = model.generate(prompt[None], max_new_tokens=max_new_tokens, do_sample=False, **kwargs)
    return out[0, len(prompt) :]


@contextmanager
def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU their spinning costs 10x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def timing_setup(model_dir, prompt_count: int = 3, device: str = "cpu"):
    """(backbone, heads, median-entropy policy, prompts as [1, 8] host rows) for the timing tests."""
    backbone, heads = tiny_backbone(model_dir, device=device)
    prompts = random_prompts([8] * prompt_count, seed=5)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    return backbone, heads, policy, [p[None] for p in prompts]
