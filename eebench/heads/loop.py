"""One training loop for exit heads and exit gates.

Both are sets of independent small modules on a frozen backbone, trained on the same batches: a token budget,
AdamW with transformers' cosine schedule with warmup, and early stopping per module on a held-out loss (each module
stops once ``patience`` evaluations bring no improvement of at least ``min_delta`` and keeps its best weights).
What differs between heads and gates is only the loss, given by a ``task`` with two methods:

- ``step(rows, active) -> {index: loss}``: loss of each active module on the training sequences ``rows``, already
  back-propagated (one module at a time, so only one vocabulary-sized activation is alive);
- ``evaluate(active) -> {index: {"heldout": loss, ...}}``: held-out loss of each active module (no gradients), plus
  any other held-out measurement the task makes (kept on the module's curve).

The loop reads its budget, batch, optimiser, cadence and patience from a ``HeadTrainingConfig`` whose
``precision`` is already resolved to float32 or bfloat16 (``heads.train.loop_settings``); gates pass one
with their own budget, batch and rate.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from eebench.errors import EEBenchError
from eebench.heads.config import HeadTrainingConfig


@dataclass
class Member:
    """Progress of one module (a head or a gate)."""

    module: nn.Module
    tokens: int = 0
    best: float = math.inf
    best_state: dict = field(default_factory=dict)
    bad_evals: int = 0
    stopped: str = ""
    train_losses: list = field(default_factory=list)
    curve: list = field(default_factory=list)

    def snapshot(self) -> None:
        self.best_state = {n: p.detach().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def restore_best(self) -> None:
        with torch.no_grad():
            for name, param in self.module.named_parameters():
                if name in self.best_state:
                    param.copy_(self.best_state[name])
        self.best_state = {}

    def record(self, evaluation: dict, settings: HeadTrainingConfig) -> None:
        """``evaluation``: the task's held-out loss (``heldout``) and whatever else it measured, kept on the curve."""
        heldout = evaluation["heldout"]
        train = sum(self.train_losses) / len(self.train_losses) if self.train_losses else None
        self.curve.append({"tokens": self.tokens, "train": train, **evaluation})
        self.train_losses = []
        if heldout < self.best - settings.min_delta:
            self.best, self.bad_evals = heldout, 0
            self.snapshot()
            return
        self.bad_evals += 1
        if self.bad_evals >= settings.patience:
            self.stopped = "converged"

    def summary(self) -> dict:
        last_train = next((p["train"] for p in reversed(self.curve) if p["train"] is not None), None)
        return {
            "tokens_seen": self.tokens,
            "stop_reason": self.stopped,
            "final_train_loss": last_train,
            "final_heldout_loss": self.curve[-1]["heldout"],
            "best_heldout_loss": self.best,
            "first_heldout_loss": self.curve[0]["heldout"],
            "evaluations": len(self.curve),
            "curve": self.curve,
        }


def autocast_for(device: torch.device | str, precision: str):
    if precision == "bfloat16":  # autocast takes the device type alone ("cuda", not "cuda:0")
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()


def train_loop(
    modules: list[nn.Module],
    task,
    num_sequences: int,
    seq_len: int,
    settings: HeadTrainingConfig,
    seed: int,
    device: torch.device,
    desc: str,
) -> dict:
    """Train ``modules`` on ``task`` until each converges or the budget is spent; returns the training log."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for module in modules for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    batch_tokens = settings.batch_size * seq_len
    total_steps = settings.max_tokens // batch_tokens
    scheduler = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps, total_steps)
    order = torch.randperm(num_sequences, generator=generator)
    members = [Member(module) for module in modules]
    for module in modules:
        module.train()
    evaluate(members, task, settings, device)
    step_seconds, next_eval, started = 0.0, settings.eval_every, time.perf_counter()
    bar = tqdm(range(total_steps), desc=desc, unit="step")
    for step in bar:
        active = [i for i, m in enumerate(members) if not m.stopped]
        if not active:
            break
        rows = order[(torch.arange(settings.batch_size) + step * settings.batch_size) % num_sequences]
        tick = time.perf_counter()
        losses = run_step(task, rows, active, settings, device)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step_seconds += time.perf_counter() - tick
        for index, loss in losses.items():
            members[index].tokens += batch_tokens
            members[index].train_losses.append(loss)
        bar.set_postfix(loss=f"{sum(losses.values()) / len(losses):.3f}", active=len(active))
        if (step + 1) * batch_tokens >= next_eval or step == total_steps - 1:
            next_eval += settings.eval_every
            evaluate(members, task, settings, device)
    for member in members:
        member.stopped = member.stopped or "budget"
        member.restore_best()
        member.module.eval()
    trained = sum(m.tokens for m in members) // len(members) if members else 0
    steps = max(m.tokens for m in members) // batch_tokens
    return {
        "max_tokens": settings.max_tokens,
        "batch_tokens": batch_tokens,
        "steps": steps,
        "tokens": steps * batch_tokens,
        "mean_tokens_per_module": trained,
        "seconds": time.perf_counter() - started,
        "tokens_per_s": steps * batch_tokens / step_seconds if step_seconds else None,
        "precision": settings.precision,
        "members": [m.summary() for m in members],
    }


def run_step(task, rows: torch.Tensor, active: list[int], settings: HeadTrainingConfig, device: torch.device) -> dict:
    try:
        with autocast_for(device, settings.precision):
            return task.step(rows, active)
    except torch.OutOfMemoryError:
        raise EEBenchError(
            f"out of memory while training with batch_size={settings.batch_size}; try a smaller batch size"
        ) from None


def evaluate(members: list[Member], task, settings: HeadTrainingConfig, device: torch.device) -> None:
    active = [i for i, m in enumerate(members) if not m.stopped]
    with torch.no_grad(), autocast_for(device, settings.precision):
        heldout = task.evaluate(active)
    for index in active:
        members[index].record(heldout[index], settings)
        if members[index].stopped:
            members[index].restore_best()
