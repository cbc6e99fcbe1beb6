"""Calibration checked on held-out documents: per head, exited tokens only, misses flagged; seeded splits."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import _write_prose
from results_factory import make_results

from eebench.analysis.pareto import runs_to_frame
from eebench.data.corpus import in_train, local_documents, split_documents
from eebench.engine.flops import CostModel
from eebench.exits.policy import ExitPolicy
from eebench.reporting.calibration_findings import calibration_share
from eebench.reporting.findings import findings_items
from eebench.traces.simulate import clustered_stderr, heldout_check, simulate
from eebench.traces.trace import Trace


def _trace() -> Trace:
    # 6 tokens, final argmax 0. Head 0 (block 2) exits tokens 0-2 and is right on 0, 1 only; head 1 (block 4)
    # exits token 3 (right); tokens 4, 5 reach the final layer.
    entropy = torch.tensor([[0.1, 0.1, 0.1, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.1, 0.9, 0.9]])
    head_argmax = torch.tensor([[0, 0, 7, 7, 7, 7], [0, 0, 0, 0, 7, 7]])
    return Trace({"entropy": entropy}, head_argmax, torch.zeros(6, dtype=torch.long))


def test_heldout_check_counts_only_tokens_each_head_let_exit():
    policy = ExitPolicy([2, 4], "entropy", [0.5, 0.5])
    check = heldout_check(_trace(), policy, target=0.9)
    # One held-out sequence (no sequence_len): no standard error, so no miss is called significant.
    assert check["heads"] == [
        {"layer": 2, "agreement": 2 / 3, "tokens": 3, "target_met": False, "agreement_stderr": None, "significant_miss": False},
        {"layer": 4, "agreement": 1.0, "tokens": 1, "target_met": True, "agreement_stderr": None, "significant_miss": False},
    ]
    assert check["exited_agreement"] == 0.75 and check["exited_tokens"] == 4 and check["tokens"] == 6
    assert check["target_met"] is False
    # The pooled figure that includes final-layer tokens (which agree by definition) looks better: 5/6.
    costs = CostModel(num_layers=6, exit_layers=[2, 4], block_cost=1.0, head_cost=1.0, lm_head_cost=1.0)
    assert simulate(_trace(), policy, costs)["agreement"] == 5 / 6
    # A head that lets nothing exit cannot miss.
    never = heldout_check(_trace(), ExitPolicy([2, 4], "entropy", [float("-inf"), 0.5]), target=0.9)
    assert never["heads"][0] == {
        "layer": 2,
        "agreement": None,
        "tokens": 0,
        "target_met": True,
        "agreement_stderr": None,
        "significant_miss": False,
    }


def test_clustered_stderr_treats_each_sequence_as_one_unit():
    # Two sequences of 3 tokens: hits 1,1,1 and 1,0,0. Mean 4/6; per-sequence residuals 3 - 2 = 1 and 1 - 2 = -1,
    # so the cluster-robust variance is 2/1 * (1 + 1) / 6**2 = 1/9: stderr 1/3.
    hits, groups = torch.tensor([1, 1, 1, 1, 0, 0]), torch.tensor([0, 0, 0, 1, 1, 1])
    assert clustered_stderr(hits, groups) == pytest.approx(1 / 3)
    assert clustered_stderr(hits, torch.zeros(6, dtype=torch.long)) is None  # one unit: not estimable
    # Identical sequences vary not at all between units.
    assert clustered_stderr(torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1])) == 0.0


def test_a_miss_is_significant_only_beyond_the_held_out_sampling_margin():
    # 40 tokens in 4 sequences of 10, every token exits at the one head. Agreement 0.8 against target 0.9.
    final = torch.zeros(40, dtype=torch.long)
    uncertain = torch.zeros(1, 40)
    spread = torch.tensor([[0] * 10 + [0] * 6 + [7] * 4 + [0] * 10 + [0] * 6 + [7] * 4])  # 1.0, 0.6, 1.0, 0.6
    even = torch.tensor([([0] * 8 + [7] * 2) * 4])  # 0.8 in every sequence
    policy = ExitPolicy([2], "entropy", [0.5])
    noisy = heldout_check(Trace({"entropy": uncertain}, spread, final), policy, 0.9, sequence_len=10)["heads"][0]
    steady = heldout_check(Trace({"entropy": uncertain}, even, final), policy, 0.9, sequence_len=10)["heads"][0]
    # Residuals +2, -2, +2, -2: variance 4/3 * 16 / 40**2, stderr 0.0924; 0.8 + 1.645 * 0.0924 > 0.9.
    assert noisy["agreement"] == pytest.approx(0.8) and not noisy["target_met"]
    assert noisy["agreement_stderr"] == pytest.approx((4 / 3 * 16) ** 0.5 / 40)
    assert noisy["significant_miss"] is False
    assert steady["agreement_stderr"] == 0.0 and steady["significant_miss"] is True


def test_report_flags_every_head_that_missed_its_target():
    good, bad = make_results(threshold=0.8), make_results(threshold=0.9)
    good["calibration"]["heldout"] = {
        "heads": [{"layer": 5, "agreement": 0.85, "tokens": 40, "target_met": True}],
        "exited_agreement": 0.85,
        "exited_tokens": 40,
        "tokens": 100,
        "target_met": True,
    }
    bad["calibration"]["heldout"] = {
        "heads": [
            {"layer": 5, "agreement": 0.95, "tokens": 30, "target_met": True},
            {"layer": 11, "agreement": 0.70, "tokens": 10, "target_met": False},
        ],
        "exited_agreement": 0.8875,
        "exited_tokens": 40,
        "tokens": 100,
        "target_met": False,
    }
    frame = runs_to_frame([good, bad])
    assert list(frame["calibration_misses"]) == ["", "block 11: 0.700 on 10 tokens"]
    assert list(frame["heldout_exited_agreement"]) == [0.85, 0.8875]
    items = [item for item in findings_items(frame, 0) if "calibration target" in item]
    assert items == [
        "**1 point(s) miss their calibration target on held-out documents** (agreement with the full "
        "model of the tokens a head let exit, below the target): `tiny-a/equal/linear/entropy` at "
        "threshold 0.9 (target 0.9): block 11: 0.700 on 10 tokens."
    ]
    # The share per method counts heads x targets: 2 of the 3 heads that let held-out tokens exit met the target.
    assert list(frame["heldout_heads_checked"]) == [1, 2] and list(frame["heldout_heads_met"]) == [1, 1]
    share = [item for item in findings_items(frame, 0) if item.startswith("**Calibration on held-out")]
    assert share and ": max_coverage 2 of 3 (67%). The held-out" in share[0]  # no significance test recorded
    for head in bad["calibration"]["heldout"]["heads"]:
        head.update(agreement_stderr=0.01, significant_miss=head["agreement"] < 0.9 - 0.0165)
    tested = calibration_share(runs_to_frame([good, bad]))
    assert ": max_coverage 2 of 3 (67%), 1 significantly below. The held-out" in tested
    # A timed copy of a point is the same policy and is counted once.
    assert calibration_share(runs_to_frame([good, bad, bad])) == tested
    # Results written before the check have no misses to report and NaN figures.
    old = runs_to_frame([make_results()])
    assert pd.isna(old["heldout_exited_agreement"][0]) and not [i for i in findings_items(old, 0) if "calibration" in i]


def test_calibration_and_heldout_documents_are_a_seeded_random_draw_disjoint_from_training(tmp_path):
    docs = local_documents(_write_prose(tmp_path / "prose.txt"))
    by_text = {text: doc_id for doc_id, text in docs.items()}
    draws = {seed: split_documents(docs, seed) for seed in (0, 1)}
    for splits in draws.values():
        train, calibration, heldout = ({by_text[t] for t in splits[name]} for name in ("train", "calibration", "heldout"))
        assert train == {doc_id for doc_id in docs if in_train(doc_id)}  # the same training documents for every seed
        assert not (train & calibration) and not (train & heldout) and not (calibration & heldout)
        assert train | calibration | heldout == set(docs) and abs(len(calibration) - len(heldout)) <= 1
    assert split_documents(docs, 0) == draws[0]  # seeded: the same draw again
    assert set(draws[0]["calibration"]) != set(draws[1]["calibration"])  # another seed, another draw
    # Not the alphabetically first documents: the order token_blocks reads them in is shuffled too.
    non_train = sorted(doc_id for doc_id in docs if not in_train(doc_id))
    assert [by_text[t] for t in draws[0]["calibration"]] != non_train[: len(draws[0]["calibration"])]
