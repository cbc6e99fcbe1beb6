"""Task accuracy of one run, early exit against the full model, with standard errors.

Standard errors of the accuracies are the evaluator's per task. The change between early exit and the full model is
paired by example (``paired_tasks``, see ``eebench.analysis.paired``): its stderr and 95% CI come from the
per-example differences, and the counts of examples that changed answer come with it. Means over tasks treat tasks
as independent (they hold different examples). Results written before ``paired_tasks`` existed fall back to the
unpaired stderr, sqrt(se_early² + se_full²) as if the two answered independent examples (conservative: the scores
of one example are positively correlated); ``acc_delta_method`` says which a row holds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eebench.analysis.paired import ACCURACY_METRICS, Z95, no_flip_half_width
from eebench.tracking.contract import PairedChange, RunResult


def number(value: Any) -> float:
    """Float or NaN (null in the results: e.g. no stderr, or a section the run did not record)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _shared_metric(early: dict, full: dict) -> str | None:
    """The accuracy metric to compare: first preferred one present for early exit (and baseline if any)."""
    for metric in ACCURACY_METRICS:
        if metric in early and (not full or metric in full):
            return metric
    return None


def _strip_filters(metrics: Any) -> dict:
    # Raw lm_eval output names metrics "acc,none" (metric,filter); accept it as "acc".
    return {str(key).split(",", 1)[0]: value for key, value in _dict(metrics).items()}


@dataclass(frozen=True)
class TaskScore:
    """One task's accuracy (fractions) for early exit and the full model, with stderr; NaN = missing. ``paired``:
    the change paired by example on the same metric, where the results have it."""

    early: float
    full: float
    early_se: float
    full_se: float
    paired: PairedChange | None = None

    @property
    def delta_points(self) -> float:
        return (self.paired.delta if self.paired else self.early - self.full) * 100

    @property
    def delta_se_points(self) -> float:
        if self.paired:
            return number(self.paired.stderr) * 100
        return math.hypot(self.early_se, self.full_se) * 100  # results without paired_tasks: see module doc


def as_result(results: RunResult | dict) -> RunResult:
    """Readers take a RunResult; a dict is read through the contract (strict: a renamed field is an error)."""
    return results if isinstance(results, RunResult) else RunResult.from_dict(results, "results")


def task_scores(results: RunResult | dict) -> dict[str, TaskScore]:
    """{task: TaskScore}, comparing the same metric (and its ``<metric>_stderr``) on both sides."""
    results = as_result(results)
    tasks, baseline = results.tasks, results.baseline_tasks
    paired = {(change.task, change.metric): change for change in results.paired_tasks}
    scores = {}
    for task in sorted(set(tasks) | set(baseline)):
        early, full = _strip_filters(tasks.get(task)), _strip_filters(baseline.get(task))
        metric = _shared_metric(early, full) or _shared_metric(full, {})
        stderr = f"{metric}_stderr"
        scores[task] = TaskScore(
            number(early.get(metric)),
            number(full.get(metric)),
            number(early.get(stderr)),
            number(full.get(stderr)),
            paired.get((task, metric)),
        )
    return scores


def task_accuracies(results: RunResult | dict) -> dict[str, tuple[float, float]]:
    """{task: (early-exit accuracy, full-model accuracy)} as fractions; NaN where missing."""
    return {task: (score.early, score.full) for task, score in task_scores(results).items()}


def _nanmean(values: Iterable[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _se_of_mean(pairs: Iterable[tuple[float, float]]) -> float:
    """Stderr of the mean of the finite values among (value, stderr) pairs, independence assumed.

    NaN when any value in the mean lacks a stderr: a partial error bar would look precise but is not.
    """
    used = [se for value, se in pairs if not math.isnan(value)]
    if not used or any(math.isnan(se) for se in used):
        return math.nan
    return math.sqrt(sum(se * se for se in used)) / len(used)


def _paired_only(scores: dict[str, TaskScore]) -> dict[str, TaskScore]:
    """The scores with their paired change dropped unless every compared task has one: a row's change and its
    error then come from one method."""
    compared = [score for score in scores.values() if not math.isnan(score.early - score.full)]
    if compared and all(score.paired for score in compared):
        return scores
    return {task: dataclasses.replace(score, paired=None) for task, score in scores.items()}


def _delta_method(scores: dict[str, TaskScore]) -> str | None:
    if any(score.paired for score in scores.values()):
        return "paired"
    return "unpaired" if any(not math.isnan(score.early - score.full) for score in scores.values()) else None


def _flip_counts(scores: dict[str, TaskScore]) -> dict[str, float]:
    """Examples paired and those that changed answer either way, summed over tasks (NaN without paired changes)."""
    changes = [score.paired for score in scores.values() if score.paired]
    counts = {"acc_paired_examples": "n", "acc_improved": "improved", "acc_worsened": "worsened"}
    if not changes:
        return dict.fromkeys(counts, math.nan)
    return {column: sum(getattr(change, name) for change in changes) for column, name in counts.items()}


def accuracy_columns(results: RunResult) -> dict[str, Any]:
    scores = _paired_only(task_scores(results))
    columns: dict[str, Any] = {}
    for task, score in scores.items():
        columns.update(
            {
                f"acc:{task}": score.early,
                f"baseline:{task}": score.full,
                f"acc_se:{task}": score.early_se,
                f"baseline_se:{task}": score.full_se,
            }
        )
    values = list(scores.values())
    deltas = [(score.delta_points, score.delta_se_points) for score in values]
    columns["mean_acc"] = _nanmean(score.early for score in values)
    columns["mean_baseline_acc"] = _nanmean(score.full for score in values)
    # Only tasks with both numbers contribute. Rounded so float noise (0.42-0.43 = -1.0000000000000009
    # points) cannot push a point across a tolerance such as "within 1 point".
    columns["acc_delta"] = round(_nanmean(delta for delta, _ in deltas), 6)
    columns["mean_acc_se"] = _se_of_mean((score.early, score.early_se) for score in values)
    columns["mean_baseline_acc_se"] = _se_of_mean((score.full, score.full_se) for score in values)
    columns["acc_delta_se"] = _se_of_mean(deltas)
    # Normal approximation, as each task's own CI: the mean change ± 1.96 of its stderr.
    half_width = Z95 * columns["acc_delta_se"]
    columns["acc_delta_method"] = _delta_method(scores)
    columns.update(_flip_counts(scores))
    if columns["acc_paired_examples"] > 0 and columns["acc_improved"] == columns["acc_worsened"] == 0:
        # Not one example changed: the normal interval collapses to a point (see no_flip_half_width).
        half_width = 100 * no_flip_half_width([score.paired.n for score in values if score.paired])
    columns["acc_delta_ci95_low"] = columns["acc_delta"] - half_width
    columns["acc_delta_ci95_high"] = columns["acc_delta"] + half_width
    return columns
