"""Analysis and reporting on synthetic sweep directories (numbers are fixtures, not measurements)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from results_factory import PNG_SIGNATURE, POINTS, make_results, make_sweep

from eebench.analysis.pareto import add_pareto_flags, pareto_front, runs_to_frame
from eebench.reporting.report import write_report
from eebench.tracking.results import load_sweeps, write_error, write_results


@pytest.fixture
def sweep(tmp_path) -> Path:
    return make_sweep(tmp_path / "sweep")


def test_pareto_front_hand_checked():
    frame = pd.DataFrame(
        {
            "x": [1.0, 1.5, 1.2, 2.0, 1.5, math.nan, 0.9],
            "y": [0.0, -1.0, -2.0, -5.0, -1.0, 3.0, 0.0],
        }
    )
    # C (1.2,-2) is dominated by B; G (0.9,0) by A; duplicates B/E do not dominate each other; NaN never.
    expected = [True, True, False, True, True, False, False]
    assert pareto_front(frame, "x", "y").tolist() == expected


def test_pareto_flags_are_per_family(sweep):
    runs, _ = load_sweeps([sweep])
    frame = add_pareto_flags(runs_to_frame(runs)).set_index(["backbone", "threshold"])
    assert frame["pareto_measured"].to_dict() == {
        ("tiny-a", 0.8): True,
        ("tiny-a", 0.9): True,
        ("tiny-a", 0.95): True,
        ("tiny-b", 0.8): False,
        ("tiny-b", 0.9): True,
        ("tiny-b", 0.95): True,
    }
    assert frame.loc[("tiny-a", 0.9), "acc_delta"] == pytest.approx(-1.0)
    assert frame.loc[("tiny-a", 0.9), "exit_layers"] == "5,11,17,23"


def test_write_report_outputs(sweep):
    report = write_report([sweep], sweep)
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == len(POINTS)
    assert {"acc:eebench_bb_x", "baseline:eebench_bb_x", "family", "measured_speedup"} <= set(summary)

    front = pd.read_csv(sweep / "pareto.csv")
    assert set(front["speedup_kind"]) == {"measured", "theoretical"}
    assert len(front[front["speedup_kind"] == "measured"]) == 5

    assert (sweep / "pareto.png").read_bytes().startswith(PNG_SIGNATURE)

    text = report.read_text(encoding="utf-8")
    assert "tiny-a" in text and "tiny-b" in text
    assert "| threshold | acc EE % | acc full % |" in text
    assert "teacher-forced simulation" in text
    assert "of 6 timed points: 1 **measurably slower**" in text  # tiny-b@0.95: 0.90x [0.85-0.95]
    skipped = text.split("## Skipped", 1)[1]
    # Named by sweep and run (outside the working directory), never by the absolute layout of this machine.
    assert "`sweep/6`: failed: RuntimeError: out of memory" in skipped and str(sweep) not in skipped
    assert "`sweep/7`: corrupt results.json" in skipped


def test_lm_eval_metric_names_and_mixed_hosts(tmp_path):
    other = make_results(threshold=0.8, acc=0.40)
    other["tasks"] = {"eebench_bb_x": {"acc,none": 0.40}}  # raw lm_eval naming
    other["provenance"]["hostname"] = "gpubox"
    write_results(tmp_path / "sweep" / "0", make_results())
    write_results(tmp_path / "sweep" / "1", other)
    runs, _ = load_sweeps([tmp_path / "sweep"])
    assert runs_to_frame(runs)["acc_delta"].tolist() == [-3.0, -1.0]
    text = write_report([tmp_path / "sweep"], tmp_path / "sweep").read_text(encoding="utf-8")
    assert "Timings come from different machines" in text and "cpu@gpubox" in text


def test_untimed_points_never_make_a_report_mixed(tmp_path):
    """A point without timing measured nothing on its hardware: its device (here the unresolved "auto" that older
    untimed points recorded) must not raise the different-machines warning over the timed ones."""
    untimed = make_results(threshold=0.8)
    untimed["timing"] = None
    untimed["provenance"]["device"] = "auto"
    write_results(tmp_path / "sweep" / "0", make_results())
    write_results(tmp_path / "sweep" / "1", untimed)
    text = write_report([tmp_path / "sweep"], tmp_path / "out").read_text(encoding="utf-8")
    assert "Timings come from different machines" not in text and "Timings come from different devices" not in text
    # Nor do they make the speed reference look unrecorded.
    assert "results from before the reference was" not in text


def test_report_written_when_nothing_succeeded(tmp_path):
    sweep = tmp_path / "sweep"
    write_error(sweep / "0", ValueError("bad config"), {})
    report = write_report([sweep], sweep)
    text = report.read_text(encoding="utf-8")
    assert "No complete runs" in text and "bad config" in text
    assert len(pd.read_csv(sweep / "summary.csv")) == 0
    assert (sweep / "pareto.png").read_bytes().startswith(PNG_SIGNATURE)


def test_report_without_timing_or_tasks(tmp_path):
    results = make_results()
    results["timing"], results["tasks"], results["baseline_tasks"] = None, {}, {}  # timing=none, eval=none
    write_results(tmp_path / "run", results)
    text = write_report([tmp_path / "run"], tmp_path / "out").read_text(encoding="utf-8")
    assert "No point has a measured speedup" in text


def test_head_by_metric_comparison_table(tmp_path):
    from eebench.analysis.pareto import runs_to_frame
    from eebench.reporting.comparison import comparison_section

    sweep_dir = tmp_path / "compare"
    for job, (head, metric, threshold) in enumerate(
        [("linear", "entropy", 0.8), ("linear", "entropy", 0.9), ("mlp", "gate", 0.9)]
    ):
        results = make_results(threshold=threshold, acc=0.40)
        results.update(head=head, confidence=metric)
        write_results(sweep_dir / str(job), results)
    frame = runs_to_frame(load_sweeps([sweep_dir])[0])
    _, _, table = comparison_section(frame)
    assert table.headers[-2:] == ["target 0.8", "target 0.9"]
    rows = {tuple(row[2:4]): row[4:] for row in table.rows}
    # coverage = 1 - final share (0.5), agreement, theoretical speedup, Δ = (0.40 - 0.43) * 100.
    assert rows[("linear", "entropy")] == ["0.50 / 0.800 / 1.50 / -3.0", "0.50 / 0.900 / 1.50 / -3.0"]
    assert rows[("mlp", "gate")] == ["–", "0.50 / 0.900 / 1.50 / -3.0"]
    # A sweep over thresholds only gets no comparison table.
    assert comparison_section(frame[frame["head"] == "linear"]) == []


def test_points_of_mixed_precision_or_cpu_model_are_flagged(tmp_path):
    """Same host name, another CPU model (cloud machines of one name differ) or another precision: both are named."""
    bf16 = make_results(threshold=0.8, acc=0.40)
    bf16["backbone_dtype"] = "bfloat16"
    bf16["timing"]["cpu_model"] = "AMD EPYC"
    write_results(tmp_path / "sweep" / "0", make_results())
    write_results(tmp_path / "sweep" / "1", bf16)
    text = write_report([tmp_path / "sweep"], tmp_path / "out").read_text(encoding="utf-8")
    assert "Timings come from different machines" in text and "AMD EPYC" in text
    assert "**Points run in different precisions** (bfloat16, float32)" in text
    write_results(tmp_path / "alone" / "0", make_results())
    alone = write_report([tmp_path / "alone"], tmp_path / "out2").read_text(encoding="utf-8")
    assert "different precisions" not in alone and "different machines" not in alone


def test_what_was_run_names_sweeps_without_the_machines_absolute_layout(tmp_path, monkeypatch):
    from eebench.reporting.paths import shown_path, shown_run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "sweeps" / "a").mkdir(parents=True)
    assert shown_path(tmp_path / "outputs" / "sweeps" / "a") == "outputs/sweeps/a"
    assert shown_path(Path("/somewhere/else/sweep-7")) == "sweep-7"
    assert shown_run(Path("/somewhere/else/sweep-7/3")) == "sweep-7/3"
    assert shown_run(tmp_path / "outputs" / "sweeps" / "a" / "3") == "outputs/sweeps/a/3"


def test_report_csvs_carry_no_absolute_path_of_the_machine(tmp_path, monkeypatch):
    from eebench.reporting.paths import portable_table

    cache = tmp_path / "cache"
    monkeypatch.setenv("EEBENCH_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    table = pd.DataFrame(
        {
            "run_dir": [str(tmp_path / "outputs" / "sweeps" / "a" / "3"), "/elsewhere/sweep-7/3"],
            "backbone_path": [str(cache / "backbones" / "dcec"), "HuggingFaceTB/SmolLM2-135M"],
            "threshold": [0.9, 0.8],
        }
    )
    shown = portable_table(table)
    assert shown["run_dir"].tolist() == ["outputs/sweeps/a/3", "sweep-7/3"]
    assert shown["backbone_path"].tolist() == ["$EEBENCH_CACHE/backbones/dcec", "HuggingFaceTB/SmolLM2-135M"]
    assert shown["threshold"].tolist() == [0.9, 0.8] and table["run_dir"][1] == "/elsewhere/sweep-7/3"  # a copy
    assert not cache.exists()  # showing a path never creates the cache

    write_results(tmp_path / "sweep" / "0", make_results())
    write_report([tmp_path / "sweep"], tmp_path / "out")
    for name in ("summary.csv", "pareto.csv"):
        assert str(tmp_path) not in (tmp_path / "out" / name).read_text(encoding="utf-8"), name
