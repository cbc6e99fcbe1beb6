"""The ``heads_training`` section of the results contract (``contract.py``): what training the heads and gates did,
with the loss-vs-tokens curves the report and W&B draw."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StateCache:
    """The backbone's hidden states over the training text, computed once and shared by every head type."""

    dir: str
    dtype: str
    build_seconds: float
    build_tokens_per_s: float


@dataclass
class ModuleTraining:
    """One head or gate: how far it trained and why it stopped."""

    exit_layer: int
    tokens_seen: int
    stop_reason: str  # "budget" or "converged" (held-out loss stopped improving)
    final_train_loss: float | None
    first_heldout_loss: float | None
    final_heldout_loss: float | None
    best_heldout_loss: float | None  # the weights kept
    evaluations: int


@dataclass
class TrainingPhase:
    """Training of all heads (KL to the final distribution) or all gates (BCE on agreement)."""

    max_tokens: int
    batch_tokens: int
    steps: int
    tokens: int
    mean_tokens_per_module: float
    seconds: float
    tokens_per_s: float | None
    precision: str
    loss: str
    modules: list[ModuleTraining]
    validation_sequences: int | None = None


@dataclass
class LossCurve:
    """Loss vs tokens of one head or gate; heads also carry the exit probe (``head.training.probe_target``): coverage
    of an entropy exit calibrated on half the validation sequences and judged on the other half, the agreement of the
    tokens that exit, and the head's top-1 agreement with the final layer."""

    module: str  # "head" or "gate"
    exit_layer: int
    tokens: list[int]
    train: list[float | None]
    heldout: list[float | None]
    coverage: list[float] | None = None
    agreement: list[float | None] | None = None
    top1_agreement: list[float] | None = None


@dataclass
class TrainingResult:
    """What training the heads (and gates) did; stored as ``heads_training``. Add fields here as the trainer logs them."""

    hidden_states: StateCache | None = None
    heads: TrainingPhase | None = None
    gates: TrainingPhase | None = None
    curves: list[LossCurve] = field(default_factory=list)
    probe_target: float | None = None  # the target of the curves' exit probe
