"""Top-1 minus top-2 probability of the head; higher is more confident."""

from eebench.exits.metrics import ConfidenceMetric, register

register(ConfidenceMetric("margin", -1.0, lambda out: out.top2[..., 0] - out.top2[..., 1], description=__doc__))
