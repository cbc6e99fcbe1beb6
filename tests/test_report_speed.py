"""Measured speed in the report, read through its 95% CIs (numbers are fixtures, not measurements)."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from results_factory import make_results

from eebench.analysis.pareto import add_pareto_flags, runs_to_frame
from eebench.reporting.document import Bullets
from eebench.reporting.findings import findings_items, findings_section
from eebench.reporting.plots import pareto_figure
from eebench.reporting.report import write_report
from eebench.reporting.speed import engine_overhead
from eebench.tracking.results import write_results


def timed_results(head: str, speedup: float, ci: tuple[float, float], acc=0.43, flags=()) -> dict:
    """Results whose timing carries the paired-bootstrap CI, the reference and the precision."""
    results = make_results(threshold=0.9, acc=acc, base=0.43, speedup=speedup)
    results["head"] = head  # one family per configuration
    results["backbone_dtype"] = "bfloat16"
    results["timing"].update(
        speedup_ci95=list(ci),
        reference="transformers_greedy",
        flags=list(flags),
        engine_full_speedup=0.95,
        engine_full_speedup_ci95=[0.93, 0.97],
    )
    return results


def ci_frame(*runs: dict) -> pd.DataFrame:
    return add_pareto_flags(runs_to_frame(list(runs)))


def test_speedup_whose_ci_contains_one_is_no_measurable_difference(tmp_path):
    write_results(tmp_path / "sweep" / "0", timed_results("linear", 1.04, (0.97, 1.10)))
    text = write_report([tmp_path / "sweep"], tmp_path / "out").read_text(encoding="utf-8")
    findings = text.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert "1.04x [95% CI 0.97–1.10]" in findings
    assert "**no measurable difference** from transformers greedy decoding" in findings
    assert "1 **no measurable difference** (CI contains 1.0)" in findings
    assert "faster" not in findings.replace("fastest", "")  # a CI containing 1 is not "faster"
    assert "1.04 [0.97–1.10] ≈ 1" in text  # the results table says it too
    what_was_run = text.split("## What was run", 1)[1].split("\n## ", 1)[0]
    assert "Precision (backbone dtype): bfloat16" in what_was_run
    assert "Speed reference: transformers greedy decoding" in what_was_run and "0.95x [95% CI 0.93–0.97]" in what_was_run


def test_overlapping_cis_are_not_ranked_separated_ones_are():
    overlapping = ci_frame(timed_results("linear", 1.30, (1.10, 1.50)), timed_results("mlp", 1.25, (1.15, 1.35)))
    finding = findings_items(overlapping, 0)[0]
    assert "2 timed configurations are the fastest and **indistinguishable**" in finding
    assert "tiny-a/equal/linear/entropy" in finding and "tiny-a/equal/mlp/entropy" in finding
    assert "the fastest timed configuration within" not in finding
    # The point estimate favours "linear"; only the separated CIs of the second pair make "mlp" the fastest.
    separated = ci_frame(timed_results("linear", 1.35, (1.05, 1.38)), timed_results("mlp", 1.32, (1.40, 1.60)))
    finding = findings_items(separated, 0)[0]
    assert (
        "the fastest timed configuration within 1 point of the full model (its 95% CI lies above every other's) is "
        "`tiny-a/equal/mlp/entropy`" in finding
    )
    assert "indistinguishable" not in finding


def test_flagged_measurement_error_is_listed_never_a_finding():
    frame = ci_frame(
        timed_results("linear", 13.9, (12.0, 15.0), flags=["speedup 13.9 above its depth bound 2.1"]),
        timed_results("mlp", 1.20, (1.10, 1.30)),
    )
    findings = " ".join(findings_items(frame, 0))
    assert "linear" not in findings and "13.9" not in findings
    assert "`tiny-a/equal/mlp/entropy` at threshold 0.9: 1.20x [95% CI 1.10–1.30]" in findings
    errors = [block for block in findings_section(frame, 0) if isinstance(block, Bullets)][-1].items
    assert errors == ["`tiny-a/equal/linear/entropy` at threshold 0.9: measured 13.90x — speedup 13.9 above its depth bound 2.1"]


def test_pareto_plot_draws_speed_cis_on_the_measured_axis_only():
    frame = ci_frame(timed_results("linear", 1.30, (1.10, 1.50)), timed_results("mlp", 1.25, (1.15, 1.35)))
    measured, theoretical = pareto_figure(frame).axes
    bars = [container for container in measured.containers if isinstance(container, ErrorbarContainer)]
    x_bars = sorted(tuple(segment[:, 0]) for bar in bars if bar.has_xerr for segment in bar.lines[2][0].get_segments())
    assert x_bars == [(1.10, 1.50), (1.15, 1.35)]
    assert not any(c.has_xerr for c in theoretical.containers if isinstance(c, ErrorbarContainer))
    untimed = make_results()
    del untimed["timing"]  # timing=none: stderr bars only, no speed bars
    assert not any(c.has_xerr for c in pareto_figure(ci_frame(untimed)).axes[0].containers if isinstance(c, ErrorbarContainer))


@pytest.mark.parametrize(
    ("columns", "reading"),
    [
        ({"engine_full_speedup": [0.95]}, "below 1: that path is slower"),
        ({"engine_full_speedup": [1.02, 1.05]}, "above 1: that path is faster"),
        ({"engine_full_speedup": [0.97, 1.03]}, "it spans 1"),
        # One point is read by its CI, not its value: above 1, but the CI contains 1.
        ({"engine_full_speedup": [1.01], "engine_full_speedup_ci_lo": [0.98], "engine_full_speedup_ci_hi": [1.04]}, "it spans 1"),
        ({"engine_full_speedup": [1.02], "engine_full_speedup_ci_lo": [1.01], "engine_full_speedup_ci_hi": [1.03]}, "above 1"),
    ],
)
def test_the_engine_reference_line_reads_in_the_direction_it_was_measured(columns, reading):
    line = engine_overhead(pd.DataFrame(columns))
    assert f"({reading}" in line
