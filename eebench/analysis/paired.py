"""The change in task accuracy from the full model to early exit, paired by example.

Both decoders answer the same examples, so the change's uncertainty comes from the per-example differences
d_i = early_i - full_i (lm-eval's per-sample scores), not from the two accuracies' own standard errors as if they
came from independent samples: the two scores of one example are positively correlated, and the unpaired error
overstates the uncertainty of the change.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from eebench.tracking.contract import PairedChange

ACCURACY_METRICS = ("acc", "acc_norm", "exact_match")  # in order of preference when a task reports several
Z95 = 1.96  # the normal approximation's two-sided 95% quantile
ONE_SIDED_Z95 = statistics.NormalDist().inv_cdf(0.95)  # its one-sided 95% quantile, for "significantly below"
NO_FLIP_EVENTS_95 = -math.log(0.05)  # the expected flips beyond which seeing none has probability below 5%

# {task: {metric: {doc_id: score}}}: lm-eval's per-sample scores, doc ids as strings (JSON keys)
SampleScores = Mapping[str, Mapping[str, Mapping[str, float]]]


def no_flip_half_width(sizes: list[int]) -> float:
    """Half-width of a 95% interval around a change of 0 when not one of the examples of ``sizes`` (one count per
    task, their accuracy changes averaged with equal weight) changed its score.

    The normal interval is [0, 0] then, which claims certainty that no sample gives. Each example flips with some
    probability r_i and the change of a task is at most the mean of its r_i (scores lie in [0, 1]). Seeing no flip has
    probability prod(1 - r_i) <= exp(-sum r_i), below 5% once sum r_i > -ln 0.05 (about 3: the rule of three); so
    with 95% confidence sum r_i <= 3, and the equal-weight mean over tasks of their mean r_i is at most
    3 / (tasks x smallest task).
    """
    return min(1.0, NO_FLIP_EVENTS_95 / (len(sizes) * min(sizes)))


def paired_change(task: str, metric: str, early: Mapping[str, float], full: Mapping[str, float]) -> PairedChange | None:
    """The paired change over the examples both sides scored; None if they share none."""
    shared = sorted(early.keys() & full.keys())
    if not shared:
        return None
    diffs = [float(early[doc]) - float(full[doc]) for doc in shared]
    n = len(diffs)
    delta = math.fsum(diffs) / n
    stderr = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else None  # sd with ddof=1: undefined for one example
    if not any(diffs):  # the normal interval would be [0, 0]
        half = no_flip_half_width([n])
        ci95 = [-half, half]
    else:
        # Normal approximation (mean ± 1.96 se): the mean of many bounded differences is close to normal.
        ci95 = [delta - Z95 * stderr, delta + Z95 * stderr] if stderr is not None else None
    return PairedChange(
        task=task,
        metric=metric,
        n=n,
        delta=delta,
        stderr=stderr,
        ci95=ci95,
        improved=sum(d > 0 for d in diffs),
        worsened=sum(d < 0 for d in diffs),
    )


def paired_changes(early: SampleScores, full: SampleScores) -> list[PairedChange]:
    """One per task and accuracy metric that both sides scored per example, sorted by task then preference."""
    changes = []
    for task in sorted(early.keys() & full.keys()):
        for metric in ACCURACY_METRICS:
            if metric in early[task] and metric in full[task]:
                change = paired_change(task, metric, early[task][metric], full[task][metric])
                changes += [change] if change else []
    return changes
