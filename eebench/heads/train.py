"""Self-distillation of exit heads: KL(final-layer distribution || head distribution), backbone frozen."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from eebench.config import HeadTrainingConfig
from eebench.errors import EEBenchError
from eebench.heads.modules import ExitHeads


def hidden_states_at(model, input_ids: torch.Tensor, exit_layers: list[int]):
    """One backbone pass: (final logits, [output of block l for l in exit_layers])."""
    out = model(input_ids, output_hidden_states=True, use_cache=False)
    # hidden_states[0] is the embedding output, so block l's output is hidden_states[l + 1].
    return out.logits, [out.hidden_states[layer + 1] for layer in exit_layers]


def distillation_loss(head_logits: torch.Tensor, teacher_logprobs: torch.Tensor) -> torch.Tensor:
    student = F.log_softmax(head_logits.float(), dim=-1).flatten(0, -2)
    return F.kl_div(student, teacher_logprobs.flatten(0, -2), log_target=True, reduction="batchmean")


def cosine_with_warmup(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_heads(model, heads: ExitHeads, tokens: torch.Tensor, cfg: HeadTrainingConfig, seed: int) -> dict:
    """Train all heads from one backbone pass per batch; returns a loss log."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for p in heads.heads.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = cosine_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    device = next(model.parameters()).device
    order = torch.randperm(len(tokens), generator=generator)
    losses = []
    heads.train()
    bar = tqdm(range(cfg.steps), desc="training exit heads", unit="step")
    for step in bar:
        picks = order[(torch.arange(cfg.batch_size) + step * cfg.batch_size) % len(tokens)]
        try:
            loss = distillation_step(model, heads, tokens[picks].to(device))
        except torch.OutOfMemoryError:
            raise EEBenchError(
                f"out of memory while training heads with head.training.batch_size={cfg.batch_size}; try a smaller batch size"
            ) from None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss)
        bar.set_postfix(kl=f"{loss:.3f}")
    heads.eval()
    return {"steps": cfg.steps, "first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]), "loss_curve": losses}


def distillation_step(model, heads: ExitHeads, batch: torch.Tensor) -> float:
    with torch.no_grad():
        final_logits, hiddens = hidden_states_at(model, batch, heads.exit_layers)
        teacher = F.log_softmax(final_logits.float(), dim=-1)
    total = 0.0
    for index, hidden in enumerate(hiddens):
        # Backward per head so only one head's vocab-sized activations are alive at a time.
        loss = distillation_loss(heads.logits(index, hidden), teacher) / len(hiddens)
        loss.backward()
        total += loss.item()
    return total
