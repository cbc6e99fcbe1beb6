"""benchmarks/results_diff.py: two results.json files compared field by field, provenance and wall times left out."""

import json

import pytest
from conftest import benchmark_module


def _point(acc: float, seconds: float, git_sha: str, extra: dict | None = None) -> dict:
    return {
        "threshold": 0.9,
        "tasks": {"strategyqa": {"acc": acc}},
        "heads_training": {"heads": {"seconds": seconds, "tokens": 2048, "dir": f"/cache/{git_sha}"}},
        "provenance": {"git_sha": git_sha, "time": "2026-12-03T14:00:00"},
        **(extra or {}),
    }


def test_results_diff_ignores_provenance_and_wall_times_but_not_results(tmp_path, capsys):
    diff = benchmark_module("results_diff")
    same = diff.compare(_point(0.5, 10.0, "aaa"), _point(0.5, 99.0, "bbb"))
    assert same == ([], [], [], 3)  # threshold, acc and tokens compared; seconds, dir and provenance left out
    differing, only_before, only_after, _ = diff.compare(_point(0.5, 10.0, "a"), _point(0.55, 10.0, "a", {"readout": "full"}))
    assert (differing, only_before, only_after) == (["tasks.strategyqa.acc"], [], ["readout"])

    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(_point(0.5, 1.0, "a")))
    after.write_text(json.dumps(_point(0.55, 1.0, "a")))
    assert diff.main([str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "differs  tasks.strategyqa.acc: 0.5 -> 0.55" in out and "3 shared fields compared: 1 differ" in out
    assert diff.main([str(before), str(before)]) == 0


def test_results_diff_reads_records_field_by_field():
    diff = benchmark_module("results_diff")
    before = {"heads": [{"layer": 6, "agreement": 0.9}, {"layer": 12, "agreement": 0.8}]}
    after = {"heads": [{"layer": 6, "agreement": 0.9, "stderr": 0.1}, {"layer": 12, "agreement": 0.7, "stderr": 0.1}]}
    differing, only_before, only_after, compared = diff.compare(before, after)
    assert differing == ["heads[1].agreement"] and only_before == []
    assert only_after == ["heads[0].stderr", "heads[1].stderr"] and compared == 5  # length, 2 layers, 2 agreements


def test_results_diff_names_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        benchmark_module("results_diff").main([str(tmp_path / "nowhere.json"), str(tmp_path / "b.json")])
    assert "nowhere.json is not a file; allowed: a results.json a run wrote" in capsys.readouterr().err
