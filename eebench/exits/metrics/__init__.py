"""Confidence metrics, one module each in this package; a module registers its metric with ``register``.

A metric turns a head's output at one position into a number whose sign says which way is confident. Most
read the head's next-token distribution (``needs_logits``); one that reads the hidden state alone (the learned
gate) lets the engine skip the vocabulary projection until some row exits. The registry puts every metric in
Hydra's ConfigStore as an option of the ``confidence`` group (``eebench.config``). To add one: a module here
calling ``register(ConfidenceMetric(...))`` and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from eebench.registry import Registry, discover


class HeadOutput:
    """What a metric may read for one head: its logits, the shared softmax of them, and its gate."""

    def __init__(
        self, logits: torch.Tensor | None = None, heads=None, index: int | None = None, hidden: torch.Tensor | None = None
    ):
        self.logits, self.heads, self.index, self.hidden = logits, heads, index, hidden

    @cached_property
    def logp(self) -> torch.Tensor:
        return torch.log_softmax(self.logits.float(), dim=-1)

    @cached_property
    def probs(self) -> torch.Tensor:
        return self.logp.exp()

    @cached_property
    def top2(self) -> torch.Tensor:
        return self.probs.topk(2, dim=-1).values

    def gate_probability(self) -> torch.Tensor:
        return self.heads.gate_probability(self.index, self.hidden).float()

    @property
    def has_gates(self) -> bool:
        return self.heads is not None and len(self.heads.gates) > 0


@dataclass(frozen=True)
class ConfidenceMetric:
    name: str
    sign: float  # +1: a lower value is more confident (entropy); -1: a higher value is (max_prob)
    value: Callable[[HeadOutput], torch.Tensor]
    needs_logits: bool = True  # False: decides from the hidden state, before the head projects
    needs_gates: bool = False  # the heads must be trained with exit gates (head.gate.width > 0)
    description: str = ""

    def available(self, output: HeadOutput) -> bool:
        return (not self.needs_logits or output.logits is not None) and (not self.needs_gates or output.has_gates)


METRICS: Registry[ConfidenceMetric] = Registry("confidence.metric")
register = METRICS.register
get_metric = METRICS.get


@dataclass
class ConfidenceConfig:
    metric: str = "entropy"  # a name registered in eebench/exits/metrics/

    def __post_init__(self) -> None:
        get_metric(self.metric)


discover(__name__, __path__)
