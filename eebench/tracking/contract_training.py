"""The ``heads_training`` section of the results contract (``contract.py``): what training the heads and gates did,
with the loss-vs-tokens curves the report and W&B draw."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StateCache:
    """The backbone's hidden states over the training text, computed once and shared by every head type."""

    dir: str  # the cache entry (kind hidden_states) holding the memory-mapped states
    dtype: str  # how the states are stored (head.training.state_dtype)
    build_seconds: float  # time to run the backbone over the training text and write the states
    build_tokens_per_s: float  # training tokens per second of that build


@dataclass
class ModuleTraining:
    """One head or gate: how far it trained and why it stopped."""

    exit_layer: int  # 0-based block feeding the head or gate
    tokens_seen: int  # training tokens it trained on
    stop_reason: str  # "budget" or "converged" (held-out loss stopped improving)
    final_train_loss: float | None  # mean training loss of the steps before the last held-out evaluation
    first_heldout_loss: float | None  # held-out loss before the first step
    final_heldout_loss: float | None  # held-out loss at the last evaluation
    best_heldout_loss: float | None  # the weights kept
    evaluations: int  # held-out evaluations run


@dataclass
class TrainingPhase:
    """Training of all heads (KL to the final distribution) or all gates (BCE on agreement)."""

    max_tokens: int  # the token budget per module (head.training.max_tokens or head.gate.max_tokens)
    batch_tokens: int  # tokens per step: batch_size x data.seq_len
    steps: int  # optimiser steps taken
    tokens: int  # steps x batch_tokens
    mean_tokens_per_module: float  # training tokens seen, averaged over the heads (or gates)
    seconds: float  # wall time of the training loop, held-out evaluations included
    tokens_per_s: float | None  # training tokens per second of the steps alone; null when no step ran
    precision: str  # float32, or bfloat16 autocast (head.training.precision resolved)
    loss: str  # "kl" (heads) or "bce" (gates)
    modules: list[ModuleTraining]  # one entry per head or gate
    validation_sequences: int | None = None  # held-out sequences carved from the training split (heads only)


@dataclass
class LossCurve:
    """Loss vs tokens of one head or gate; heads also carry the exit probe (``head.training.probe_target``): coverage
    of an entropy exit calibrated on half the validation sequences and judged on the other half, the agreement of the
    tokens that exit, and the head's top-1 agreement with the final layer."""

    module: str  # "head" or "gate"
    exit_layer: int  # 0-based block feeding the head or gate
    tokens: list[int]  # training tokens seen at each held-out evaluation
    train: list[float | None]  # mean training loss since the previous evaluation; null at the first
    heldout: list[float | None]  # held-out loss (KL for heads, BCE for gates)
    coverage: list[float] | None = None  # heads: share of probe tokens an entropy exit at probe_target lets out
    agreement: list[float | None] | None = None  # heads: agreement with the final layer of the tokens that exit
    top1_agreement: list[float] | None = None  # heads: share of tokens whose top-1 equals the final layer's


@dataclass
class TrainingResult:
    """What training the heads (and gates) did; stored as ``heads_training``. Add fields here as the trainer logs them."""

    hidden_states: StateCache | None = None  # the hidden-state cache the heads and gates trained from
    heads: TrainingPhase | None = None  # the heads' training (KL to the final distribution)
    gates: TrainingPhase | None = None  # the gates' training (BCE on agreement); absent without gates
    curves: list[LossCurve] = field(default_factory=list)  # loss vs tokens per head and per gate
    probe_target: float | None = None  # the target of the curves' exit probe
