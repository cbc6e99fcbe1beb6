"""Probability of the head's top token; higher is more confident."""

from eebench.exits.metrics import ConfidenceMetric, register

register(ConfidenceMetric("max_prob", -1.0, lambda out: out.top2[..., 0], description=__doc__))
