"""Cheap exit gates: predict from a block's hidden state whether its head will agree with the full model.

A full-vocabulary head costs about as much as the lm_head, so evaluating one at every exit layer makes
tokens that do not exit slower than the full model. A gate reads the hidden state through a small MLP
(hidden -> 64 -> 1, ~0.1% of a head's cost); only the head of the exit the gate picks projects to the vocabulary.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


class ExitGate(nn.Module):
    def __init__(self, norm: nn.Module, hidden: int, width: int = 64):
        super().__init__()
        self.norm = copy.deepcopy(norm).requires_grad_(False)
        self.up = nn.Linear(hidden, width)
        self.out = nn.Linear(width, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Probability that the head at this layer agrees with the full model's next token."""
        return torch.sigmoid(self.out(F.gelu(self.up(self.norm(hidden)))).squeeze(-1))

    def logit(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.up(self.norm(hidden)))).squeeze(-1)


def train_gates(model, heads, tokens: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int) -> dict:
    """Fit each gate to predict agreement of its (already trained, frozen) head with the final layer."""
    from eebench.heads.train import hidden_states_at

    generator = torch.Generator().manual_seed(seed)
    params = [p for gate in heads.gates for p in gate.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    device = next(model.parameters()).device
    losses = []
    for step in tqdm(range(steps), desc="training exit gates", unit="step"):
        batch = tokens[torch.randint(len(tokens), (batch_size,), generator=generator)].to(device)
        with torch.no_grad():
            final, hiddens = hidden_states_at(model, batch, heads.exit_layers)
            target_tokens = final.argmax(-1)
            agree = [(heads.logits(i, h).argmax(-1) == target_tokens).float() for i, h in enumerate(hiddens)]
        loss = sum(F.binary_cross_entropy_with_logits(gate.logit(h), a) for gate, h, a in zip(heads.gates, hiddens, agree))
        loss = loss / len(hiddens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"gate_steps": steps, "gate_first_loss": losses[0], "gate_final_loss": sum(losses[-5:]) / len(losses[-5:])}
