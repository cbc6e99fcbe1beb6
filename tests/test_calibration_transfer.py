"""benchmarks/calibration_transfer.py: variants parsed with one-line errors, the held-out trace found beside the
calibration one, and a hand-made trace pair counted as the point's own held-out check would count it."""

import json

import pytest
import torch
from conftest import benchmark_module

from eebench.traces.trace import Trace


def test_variants_parse_and_bad_ones_fail_in_one_line():
    transfer = benchmark_module("calibration_transfer")
    cfg = transfer.variant_config("risk_controlled:clustered:0.05")
    assert (cfg.method, cfg.bound, cfg.delta) == ("risk_controlled", "clustered", 0.05)
    assert transfer.variant_config("max_coverage").method == "max_coverage"
    for bad, named in [("max_coverage:binomial:0.1", "only risk_controlled"), ("risk_controlled:0.1", "bound and a delta")]:
        with pytest.raises(SystemExit, match=named):
            transfer.variant_config(bad)


def test_the_heldout_trace_is_the_entry_with_the_same_heads(tmp_path):
    transfer = benchmark_module("calibration_transfer")
    entries = {"cal": ("h1", "calibration"), "other": ("h2", "heldout"), "mine": ("h1", "heldout")}
    for name, (heads, split) in entries.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.json").write_text(json.dumps({"heads": heads, "split": split}))
    assert transfer.heldout_trace_dir(tmp_path / "cal") == tmp_path / "mine"
    (tmp_path / "mine" / "spec.json").unlink()
    with pytest.raises(SystemExit, match="no held-out trace"):
        transfer.heldout_trace_dir(tmp_path / "cal")


def _trace(uncertainty: list[float], agree: list[bool]) -> Trace:
    final = torch.arange(len(agree))
    head = torch.where(torch.tensor(agree), final, final + 1)
    return Trace({"entropy": torch.tensor([uncertainty], dtype=torch.float64)}, head[None], final)


def test_a_point_counts_met_and_missed_heads_on_the_heldout_trace():
    """One head. Calibration: the 8 surest tokens agree, the rest do not, so max-coverage at 0.75 lets out the 8
    surest and the next 2 (8 of 10 agree). Held-out: of the tokens under that threshold, half agree: a miss."""
    transfer = benchmark_module("calibration_transfer")
    calibration = _trace([i / 20 for i in range(20)], [True] * 8 + [False] * 12)
    heldout = _trace([i / 20 for i in range(20)], [True, False] * 10)
    run = {"name": "r", "family": "linear+full", "exit_layers": [1], "sequence_len": 4}
    run |= {"calibration": calibration, "heldout": heldout}
    point = transfer.check_point(run, "entropy", 0.75, "max_coverage")
    assert (point["heads_checked"], point["heads_met"]) == (1, 0)
    assert point["heldout_exit_share"] == pytest.approx(10 / 20)
    assert point["heads"][0]["agreement"] == pytest.approx(0.5)
    easy = transfer.check_point(run | {"heldout": calibration}, "entropy", 0.75, "max_coverage")
    assert (easy["heads_checked"], easy["heads_met"]) == (1, 1)
    summary = transfer.summarise([point, easy], ["max_coverage"])
    assert summary[0] | {"mean_heldout_exit_share": None} == {
        "variant": "max_coverage",
        "heads_x_targets_checked": 2,
        "met": 1,
        "met_share": 0.5,
        "significantly_below": 1,  # every held-out passage agrees half the time: a stderr of 0, so the miss is sure
        "mean_heldout_exit_share": None,
    }
