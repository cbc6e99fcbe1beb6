"""``head.*``: the exit heads' type, their self-distillation training and the exit gates, each default declared here
once; presets (``conf/experiment/``) set only what they change. A head type's own fields are ``head.options``,
declared with their defaults on the type (``heads/types/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eebench.errors import require
from eebench.heads.types import head_options
from eebench.registry import one_of, positive

STATE_DTYPES = ("float16", "bfloat16", "float32")
TRAINING_PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass
class HeadTrainingConfig:
    max_tokens: int = 200_000  # token budget per head (training stops earlier once the held-out KL stops improving)
    batch_size: int = 4  # sequences per step
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    eval_every: int = 32_768  # tokens between held-out KL evaluations
    patience: int = 3  # evaluations without an improvement of at least min_delta before a head stops
    min_delta: float = 1e-3
    val_sequences: int = 16  # validation slice carved from the end of the training split (never trained on)
    # how cached hidden states are stored on disk (bfloat16 if a backbone's states exceed the float16 range)
    state_dtype: str = "float16"
    precision: str = "auto"  # heads train with float32 weights; auto: bf16 autocast exactly when the backbone is bf16
    probe_target: float = 0.9  # each held-out evaluation also measures coverage of an entropy exit calibrated to this

    def __post_init__(self) -> None:
        positive("head.training.max_tokens", self.max_tokens)
        positive("head.training.batch_size", self.batch_size)
        positive("head.training.lr", self.lr)
        positive("head.training.eval_every", self.eval_every)
        require(self.patience >= 1, f"head.training.patience={self.patience} must be >= 1 (evaluations without improvement)")
        require(self.min_delta >= 0, f"head.training.min_delta={self.min_delta} must be >= 0")
        require(self.warmup_steps >= 0, f"head.training.warmup_steps={self.warmup_steps} must be >= 0")
        require(
            self.val_sequences >= 2,
            f"head.training.val_sequences={self.val_sequences} must be >= 2 (half calibrates the exit probe, half judges it)",
        )
        require(0 < self.probe_target < 1, f"head.training.probe_target={self.probe_target} is outside (0, 1)")
        one_of("head.training.state_dtype", self.state_dtype, STATE_DTYPES)
        one_of("head.training.precision", self.precision, TRAINING_PRECISIONS)


@dataclass
class GateConfig:
    width: int = 64  # 0: no gates
    max_tokens: int = 30_720  # token budget per gate (stops earlier once the held-out loss stops improving)
    batch_size: int = 4
    lr: float = 3e-3

    def __post_init__(self) -> None:
        require(self.width >= 0, f"head.gate.width={self.width} must be >= 0 (0 disables gates)")
        positive("head.gate.max_tokens", self.max_tokens)
        positive("head.gate.batch_size", self.batch_size)


@dataclass
class HeadConfig:
    kind: str = "linear"  # a head type registered in eebench/heads/types/
    init_from_lm_head: bool = True
    training: HeadTrainingConfig = field(default_factory=HeadTrainingConfig)
    gate: GateConfig = field(default_factory=GateConfig)  # cheap exit gates (hidden -> width -> 1); confidence=gate
    # The head type's own fields (e.g. low_rank: rank), declared with defaults on the type; filled in here.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = head_options(self.kind, self.options)
