"""The paired accuracy change (eebench.analysis.paired) on hand-made per-example scores."""

from __future__ import annotations

import math

import pytest

from eebench.analysis.paired import paired_change, paired_changes
from eebench.evaluation.runner import metrics_of, sample_scores_of


def _scores(values: list[float]) -> dict[str, float]:
    return {str(doc): value for doc, value in enumerate(values)}


def test_paired_change_hand_checked():
    early = _scores([1, 1, 0, 0, 1, 0])
    full = _scores([0, 1, 0, 1, 0, 0])
    change = paired_change("t", "acc", early, full)
    # d = [1, 0, 0, -1, 1, 0]: mean 1/6; squared deviations 2·(5/6)² + 3·(1/6)² + (7/6)² = 17/6, sd² = 17/30.
    assert (change.task, change.metric, change.n) == ("t", "acc", 6)
    assert change.delta == pytest.approx(1 / 6, rel=1e-12)
    assert change.stderr == pytest.approx(math.sqrt(17 / 30) / math.sqrt(6), rel=1e-12)
    assert change.ci95 == pytest.approx([1 / 6 - 1.96 * change.stderr, 1 / 6 + 1.96 * change.stderr], rel=1e-12)
    assert (change.improved, change.worsened) == (2, 1)


def test_paired_change_pairs_by_doc_id_only():
    # Doc "9" has no twin; the order of the keys does not matter, their ids do.
    early = {"2": 0.0, "0": 1.0, "1": 1.0, "9": 1.0}
    full = {"0": 1.0, "1": 0.0, "2": 0.0}
    change = paired_change("t", "acc", early, full)
    assert change.n == 3 and change.delta == pytest.approx(1 / 3, rel=1e-12)
    assert (change.improved, change.worsened) == (1, 0)
    assert change.stderr == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3), rel=1e-12)  # d = [0, 1, 0]: sd² = 1/3
    assert paired_change("t", "acc", {"0": 1.0}, {"1": 1.0}) is None


def test_identical_sides_change_nothing_and_one_example_has_no_error():
    same = _scores([1, 0, 1, 1])
    change = paired_change("t", "acc", same, dict(same))
    assert (change.delta, change.stderr, change.improved, change.worsened) == (0.0, 0.0, 0, 0)
    # No flip among 4 examples bounds the change by 3/4 (min(1, -ln 0.05 / 4)), not by [0, 0].
    assert change.ci95 == pytest.approx([math.log(0.05) / 4, -math.log(0.05) / 4], rel=1e-12)
    single = paired_change("t", "acc", {"0": 1.0}, {"0": 0.0})
    assert (single.n, single.delta, single.stderr, single.ci95, single.improved) == (1, 1.0, None, None, 1)


def test_paired_changes_per_task_and_accuracy_metric():
    early = {"a": {"acc": _scores([1, 0]), "acc_norm": _scores([1, 1])}, "b": {"exact_match": _scores([0])}, "c": {}}
    full = {"a": {"acc": _scores([0, 0]), "acc_norm": _scores([1, 0])}, "b": {"acc": _scores([1])}}
    changes = paired_changes(early, full)
    assert [(c.task, c.metric, c.delta) for c in changes] == [("a", "acc", 0.5), ("a", "acc_norm", 0.5)]


def test_sample_scores_follow_the_filter_the_metric_is_read_from():
    """lm-eval logs one sample per document and filter; the per-sample scores must average to the task's metric."""
    out = {
        "results": {"gen": {"alias": "gen", "exact_match,strict": 0.5, "exact_match,flexible": 1.0}},
        "samples": {
            "gen": [
                {"doc_id": 0, "filter": "strict", "exact_match": 1.0},
                {"doc_id": 1, "filter": "strict", "exact_match": 0.0},
                {"doc_id": 0, "filter": "flexible", "exact_match": 1.0},
                {"doc_id": 1, "filter": "flexible", "exact_match": 1.0},
            ]
        },
    }
    assert metrics_of(out) == {"gen": {"exact_match": 1.0}}  # the last filter listed
    assert sample_scores_of(out) == {"gen": {"exact_match": {"0": 1.0, "1": 1.0}}}
    assert sample_scores_of({"results": out["results"]}) == {}  # no logged samples: nothing to pair


def test_no_flip_interval_is_the_rule_of_three_and_covers_rare_flips():
    from eebench.analysis.paired import no_flip_half_width

    assert no_flip_half_width([1000]) == pytest.approx(2.9957 / 1000, rel=1e-4)
    assert no_flip_half_width([100, 150, 100]) == pytest.approx(2.9957 / 300, rel=1e-4)  # tasks x smallest task
    assert no_flip_half_width([2]) == 1.0  # never wider than a score's range
    # Coverage: with a flip rate at the bound, seeing no flip in n examples happens at most 5% of the time.
    n = 200
    assert (1 - no_flip_half_width([n])) ** n <= 0.05
