"""Entropy of the head's next-token distribution (the paper's metric); lower is more confident."""

from eebench.exits.metrics import ConfidenceMetric, register

register(ConfidenceMetric("entropy", 1.0, lambda out: -(out.probs * out.logp).sum(-1), description=__doc__))
