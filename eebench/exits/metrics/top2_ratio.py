"""Second-best over best token probability of the head, p2 / p1 in [0, 1]; lower is more confident.

Unlike the margin p1 - p2 it is scale-free: 0.30 vs 0.15 (a clear winner in a flat distribution) reads as
confident as 0.60 vs 0.30."""

from eebench.exits.metrics import ConfidenceMetric, register

register(ConfidenceMetric("top2_ratio", 1.0, lambda out: out.top2[..., 1] / out.top2[..., 0], description=__doc__))
