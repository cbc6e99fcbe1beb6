"""A learned exit gate's probability that the head agrees with the full model (heads/gate.py); higher is more
confident. It reads the hidden state only, so the head projects to the vocabulary only when some row exits.
Needs heads trained with gates (head.gate.width > 0)."""

from eebench.exits.metrics import ConfidenceMetric, register

register(
    ConfidenceMetric("gate", -1.0, lambda out: out.gate_probability(), needs_logits=False, needs_gates=True, description=__doc__)
)
